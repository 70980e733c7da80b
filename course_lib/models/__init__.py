"""Denoising networks. A network knows nothing of noise schedules: it maps (x_t, t[, labels]) to a prediction.

mlp (``MLPDenoiser``, toy data) · unet2d (``UNet2D``, images) · unet3d (``UNet3D``, factorised
space-time video) · transformer (``SpaceTimeTransformer``: DiT/Latte over latent
space-time patches) · conv_lstm (``ConvLSTMDenoiser``) · frame_conditional (``FrameConditionalDenoiser``:
sees the known frames) · seed_video_model (the source article's model, bugs and fixes) · blocks and
embeddings (ResBlock, attention, timestep and class embeddings) · text_encoder (``TextEncoder``:
caption tokens -> the context of cross-attention) · inspect (``count_parameters``,
``capture_temporal_attention``).
"""
