"""The diffusion process: noise schedules, the forward process, training losses and samplers.

Networks know nothing of noise: everything here takes a ``model_fn(x_t, t)`` or is a
``loss_fn(model, batch, generator)`` for the trainer, and works for points, images and videos.
schedules (β_t, ᾱ_t, SNR) · forward (q(x_t | x0), the posterior, ε/x0/v) · objectives (every
training loss, timestep samplers, label dropout) · samplers (DDPM, DDIM) · guidance
(classifier-free) · flow (flow matching, Euler/Heun) · conditioning (known frames) · rollout
(predicting the future, long videos) · forcing (a noise level per frame, schedule-matrix
samplers, rolling rollouts) · editing (SDEdit, inpainting).
"""
