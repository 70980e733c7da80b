"""course_lib: the tested library behind the video-diffusion course's lessons.

The core a learner reads, one package per idea -- ``diffusion`` (schedules, the forward process,
losses, samplers, guidance, flow matching, conditioning, rollout, editing), ``models`` (the
networks), ``training`` (the loop, EMA, checkpoints), ``data``, ``metrics`` and ``views`` (figures
and widgets) -- and beside it ``workshop``, the course machinery (recipes, train-or-load, shipped
weights, the command line, exercise checks, the notebook build, benchmarks), which the core never
imports.

Conventions used everywhere (see README, "Conventions"):

* diffusion steps are 0-indexed: ``t`` in ``0..T-1`` for T steps; code index ``t`` is the paper's step ``t+1``;
* images are ``(B, C, H, W)``, videos ``(B, F, C, H, W)`` with F frames, values in ``[-1, 1]``;
* a network maps ``(x_t, t)`` to a prediction and knows nothing of the noise schedule.
"""
__version__ = "0.1.0"
__version__ = "0.1.0"
