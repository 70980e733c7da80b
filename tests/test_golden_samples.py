"""The shipped checkpoints draw the samples they drew before the library's redesign, to float32 roundoff.

`tests/fixtures/golden/shipped_samples.pt` holds, for each shipped file, 4 samples (DDIM-5, η = 1 -- or,
for a flow-matching model, Heun with 3 steps --, generator seeded 123, guidance 3 for the digits; one
thread; for an autoencoder, which does not sample, its reconstructions of 4 real clips drawn with seed
123; for lesson 08's frame-conditional U-Nets, the futures they predict for those 4 clips from their
first K frames, DDIM-5) stored before the modules moved, or when the file was first shipped. A change
anywhere between the lesson's `recipe.sample` and the network -- the schedule, the sampler, the
guidance, the model's layers, the loading of the float16 export -- shows here as a changed sample.
On the CPU that stored them they come back bit for bit; another CPU's kernels round differently (by up
to a few 1e-6 on the video models), so the samples are compared to ROUNDOFF, far below what any such
change moves them (1e-2 and more).
"""
from pathlib import Path

import pytest
import torch

from course_lib.workshop import shipped, zoo
from course_lib.workshop.doctor import shipped_models
from course_lib.workshop.predictor import known_frames, video_predictors

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "shipped_samples.pt"
ROUNDOFF = 1e-4  # largest difference allowed between the stored samples and today's, each value in [-1, 1]
SHIPPED = sorted((Path(zoo.__file__).resolve().parent / "pretrained").glob("*.pt"))


def load_shipped(path: Path):
    """(the doctor's ShippedModel for ``path``, the trainer of its EMA weights) -- the way its lesson loads it."""
    model = next((model for model in shipped_models() if model.path(shipped.SHIPPED_FOLDER) == path), None)
    assert model is not None, f"{path.name}: no lesson asks for it (doctor.SHIPPED, SHIPPED_PREDICTORS)"
    return model, zoo.load(model.recipe, path, progress=False, parts=model.parts)


def predict_future(model, network, clips: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """Lesson 08's prediction with a shipped frame-conditional ``network``: clips' first K frames -> whole clips.

    A network trained with conditioning augmentation up to step s sees the past at step s // 2, as in lesson 08.
    """
    context_noise = model.options["context_noise"] // 2
    (predict,) = video_predictors(model.recipe, conditional=network, steps=steps, context_noise=context_noise).values()
    return predict(clips[:, :known_frames(model.recipe.preset)], clips.shape[1])


def golden_samples(recipe, network, model=None) -> torch.Tensor:
    """The 4 samples stored for a shipped file (call with one thread); model: its ShippedModel when it is
    another network than the recipe's own."""
    if model is not None and model.parts is not None:
        return predict_future(model, network, recipe.real_examples(4, seed=123), steps=5)
    if recipe.model_name == "autoencoder":
        return network.reconstruct(recipe.real_examples(4, seed=123))
    guidance = {"guidance_scale": 3.0} if recipe.num_classes else {}
    solver = {"sampler": "heun", "steps": 3} if recipe.objective == "flow" else {"sampler": "ddim", "steps": 5, "eta": 1.0}
    return recipe.sample(network, 4, generator=torch.Generator().manual_seed(123), **solver, **guidance)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_a_shipped_checkpoint_draws_the_stored_samples(path):
    expected = torch.load(GOLDEN, weights_only=True)[path.stem]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, trainer = load_shipped(path)
        samples = golden_samples(model.recipe, trainer.ema_model, model)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(samples, expected, rtol=0, atol=ROUNDOFF)


def test_every_shipped_checkpoint_has_stored_samples():
    assert {path.stem for path in SHIPPED} == set(torch.load(GOLDEN, weights_only=True))
