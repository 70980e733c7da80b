"""Denoising networks. A network knows nothing of noise schedules: it maps (x_t, t) to a prediction."""
