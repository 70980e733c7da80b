"""How good are the samples? Pixel metrics, distribution metrics, and scores of motion and prediction.

* :mod:`course_lib.metrics.image` -- ``psnr``, ``ssim``: compare an image with its reference.
* :mod:`course_lib.metrics.frechet` -- ``frechet_distance``: the distance between two Gaussian
  fits of features (FID for images; FVD for videos uses the same function).
* :mod:`course_lib.metrics.inception_score` -- ``inception_score`` from a classifier's predictions.
* :mod:`course_lib.metrics.judge` -- the digit judge (our Inception) and ``image_scores``.
* :mod:`course_lib.metrics.video` -- the video judge, FVD-style distance and video scores.
* :mod:`course_lib.metrics.motion` -- ``motion_consistency``: one object on a bouncing straight path.
* :mod:`course_lib.metrics.consistency` -- ``video_consistency``: the object present in every frame,
  moving consistently and keeping its look (colour and shape, or digit): what a viewer checks.
* :mod:`course_lib.metrics.caption_match` -- ``caption_match``: does each clip show what its caption
  asked for (shape, colour or digit, direction)?
* :mod:`course_lib.metrics.prediction` -- predicted futures and long rollouts against the truth.
* :mod:`course_lib.metrics.toy` -- ``mmd_rbf`` and friends for 1D/2D toy samples.
"""
from course_lib.metrics.frechet import frechet_distance, frechet_distance_from_features, gaussian_fit
from course_lib.metrics.image import psnr, ssim
from course_lib.metrics.inception_score import inception_score
from course_lib.metrics.judge import (
    FID_SAMPLES,
    get_digit_judge,
    image_scores,
    judge_config_for_preset,
    reference_digits,
)

__all__ = [
    "FID_SAMPLES",
    "frechet_distance",
    "frechet_distance_from_features",
    "gaussian_fit",
    "get_digit_judge",
    "image_scores",
    "inception_score",
    "judge_config_for_preset",
    "psnr",
    "reference_digits",
    "ssim",
]
