"""course_lib: the tested library behind the video-diffusion course notebooks.

Conventions used everywhere (see README, "Conventions"):

* timesteps are 0-indexed: ``t`` in ``0..T-1``; code index ``t`` is the paper's step ``t+1``;
* images are ``(B, C, H, W)``, videos are ``(B, T, C, H, W)``, values in ``[-1, 1]``;
* a network maps ``(x_t, t)`` to a prediction and knows nothing of the noise schedule.
"""
__version__ = "0.1.0"
