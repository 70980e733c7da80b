"""Course data, generated from a seed (nothing is downloaded) or read from the learner's own files.

toy (``two_moons``, ``swiss_roll``, ``gaussian_mixture_1d``) · digits (``render_digits``: digits
drawn from the fonts matplotlib ships) · video (``moving_digits``, ``bouncing_shapes`` with their
true positions; (B, F, C, H, W) helpers) · captions (``captioned_shapes``, ``tokenize``: a caption
per clip from its parameters, its tokens, the null caption) · files (``read_video``, ``VideoFolder``:
your GIF/MP4 clips).
"""
