"""What lessons draw: figures, animations and widgets, each with a static fallback without a widget frontend.

figures (``animate``, ``filmstrip``, ``image_grid``, ``frame_scrubber``, ``slider_view``, ``save_gif``) ·
forward (the noising explorer, SNR plots) · toy (particle animations of 2D sampling) · prediction
(``plot_decay``: long videos degrading) · quiz (``check_yourself``: the questions that end a lesson).
"""
