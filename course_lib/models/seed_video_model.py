"""The seed article's conv + LSTM video model (§5.1), exactly as printed, and tools to watch it fail.

:class:`VideoDiffusionModel` below is the code of the seed's §5.1 "代码实例" (code example),
character for character; only its three Chinese comments are translated. Notebook 06 runs it and
shows each of its bugs. Every claim below is checked by ``tests/test_seed_video_model.py``
(messages quoted from PyTorch 2.13):

1. **Channels change inside an in-place write.** In the line
   ``x[:, i] = F.relu(conv_layer(x[:, i]))`` the first convolution maps ``in_channels`` to
   ``hidden_dim`` channels, and the result is written back into the input's own slot of
   ``in_channels`` channels. With ``in_channels != hidden_dim`` that line raises
   ``RuntimeError: The expanded size of the tensor (3) must match the existing size (16) at
   non-singleton dimension 1`` (for in_channels=3, hidden_dim=16), with or without gradients.
2. **The in-place writes break autograd.** With ``in_channels == hidden_dim`` the same line runs,
   but (a) if ``x`` itself requires grad it raises ``RuntimeError: a view of a leaf Variable that
   requires grad is being used in an in-place operation``; (b) otherwise the forward pass goes on,
   yet each convolution saved a view of ``x`` for its backward pass and the next write overwrote
   it, so ``backward()`` raises ``RuntimeError: one of the variables needed for gradient
   computation has been modified by an inplace operation``. (c) The model also overwrites the
   caller's tensor ``x``: after a call, the input video is gone.
3. **nn.LSTM gets feature maps.** ``features`` is (B, T, hidden_dim, H, W); ``nn.LSTM`` takes
   (B, T, features) only, so ``output, (hn, cn) = self.lstm(features, (h0, c0))`` raises
   ``ValueError: LSTM: Expected input to be 2D or 3D, got 5D instead`` (grad or no grad).
4. **Vectors cannot be viewed as maps.** Even with the LSTM fed vectors (e.g. each map averaged
   to one number per channel), its output (B, T, hidden_dim) holds B·T·hidden_dim numbers, and
   ``output.view(batch_size * num_frames, self.hidden_dim, *x.size()[-2:])`` needs H·W times more:
   ``RuntimeError: shape '[8, 16, 8, 8]' is invalid for input of size 128`` (B=2, T=4, 8x8). Even
   at H = W = 1, where the sizes agree, the view fails for B > 1: a ``batch_first`` LSTM returns a
   transposed, non-contiguous tensor (``RuntimeError: view size is not compatible with input
   tensor's size and stride``); ``reshape`` would be needed.
5. **The timestep is never used.** ``t`` is an argument of ``forward`` and nothing reads it, so a
   denoiser built this way cannot know how much noise to remove. Shown by
   :class:`PatchedVideoDiffusionModel` (bugs 1-4 fixed, ``t`` still ignored) and
   :func:`seed_model_ignores_t`.

:func:`encode_frames` is the seed's feature extraction with bugs 1-2 fixed. The working models are
:class:`course_lib.models.conv_lstm.ConvLSTMDenoiser` and
:class:`course_lib.models.unet3d.UNet3D`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib._validation import check_rank, fail

# ---------------------------------------------------------------------------------------------
# The seed's §5.1, as printed (comments translated from Chinese). Do not fix: notebook 06 runs it.
# ---------------------------------------------------------------------------------------------


class VideoDiffusionModel(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, hidden_dim):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim

        self.conv_layers = nn.ModuleList([
            nn.Conv2d(in_channels if i == 0 else hidden_dim, hidden_dim, kernel_size=3, padding=1)
            for i in range(num_layers)
        ])
        self.lstm = nn.LSTM(hidden_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.output_layer = nn.Conv2d(hidden_dim, out_channels, kernel_size=3, padding=1)

    def forward(self, x, t):
        # x: (batch_size, num_frames, in_channels, height, width)
        # t: (batch_size,)

        batch_size, num_frames, _, _, _ = x.size()

        # extract spatio-temporal features
        features = []
        for i in range(num_frames):
            for conv_layer in self.conv_layers:
                x[:, i] = F.relu(conv_layer(x[:, i]))
            features.append(x[:, i])

        # model the temporal dependencies with an LSTM
        features = torch.stack(features, dim=1)
        h0 = torch.zeros(self.num_layers, batch_size, self.hidden_dim).to(x.device)
        c0 = torch.zeros(self.num_layers, batch_size, self.hidden_dim).to(x.device)
        output, (hn, cn) = self.lstm(features, (h0, c0))

        # generate the video frames
        output = output.view(batch_size * num_frames, self.hidden_dim, *x.size()[-2:])
        output = self.output_layer(output)
        output = output.view(batch_size, num_frames, self.out_channels, *x.size()[-2:])

        return output


# ---------------------------------------------------------------------------------------------
# Tools to look at each failure without editing the seed's code.
# ---------------------------------------------------------------------------------------------


def describe_error(fn: Callable[[], object]) -> str:
    """Call ``fn()`` and return ``"ErrorType: first line of the message"``, or ``"no error"``.

    Lets a notebook show a failure in a cell that still runs to the end.
    """
    try:
        fn()
    except Exception as error:  # noqa: BLE001 -- we report whatever the seed's code raises
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"{type(error).__name__}: {message}"
    return "no error"


class _StopBeforeLSTM(Exception):
    """Raised by a hook to stop the seed's forward pass at its LSTM call."""


def lstm_input_of(model: VideoDiffusionModel, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Run the seed's own ``forward`` up to ``self.lstm(...)`` and return what it passes in.

    x: (B, T, C, H, W) -> ``features`` (B, T, hidden_dim, H, W), the tensor the seed feeds the LSTM
    (it needs ``in_channels == hidden_dim`` to get that far, bug 1). The pass is stopped by a hook
    on ``model.lstm``, so the code that ran is exactly the seed's. ``x`` is overwritten, as the
    seed always does (bug 2c); pass a clone to keep yours. Call ``.sum().backward()`` on the result
    to see bug 2b.
    """
    captured: dict[str, torch.Tensor] = {}

    def grab_and_stop(module, args):
        captured["features"] = args[0]
        raise _StopBeforeLSTM

    handle = model.lstm.register_forward_pre_hook(grab_and_stop)
    try:
        model(x, t)
    except _StopBeforeLSTM:
        pass
    finally:
        handle.remove()
    if "features" not in captured:  # pragma: no cover -- the seed's forward always reaches the LSTM or raises
        fail("model", "a forward pass that reaches model.lstm", "none")
    return captured["features"]


def forward_with_pooled_lstm_input(model: VideoDiffusionModel, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The seed's ``forward`` with one patch: the LSTM gets each feature map averaged to a vector.

    A hook replaces ``features`` (B, T, hidden, H, W) by its spatial mean (B, T, hidden), which
    ``nn.LSTM`` accepts (getting past bug 3). The seed's code then continues and reaches
    ``output.view(B * T, hidden, H, W)``, which raises (bug 4) for every shape except
    B = H = W = 1.
    """
    handle = model.lstm.register_forward_pre_hook(lambda module, args: (args[0].mean(dim=(-2, -1)), *args[1:]))
    try:
        return model(x, t)
    finally:
        handle.remove()


def encode_frames(conv_layers, x: torch.Tensor) -> torch.Tensor:
    """The seed's feature extraction done right (bugs 1-2 fixed): x (B, T, C, H, W) -> (B, T, hid, H, W).

    Time is folded into the batch, (B·T, C, H, W), every layer makes a new tensor,
    ``h = relu(conv(h))``, and the result is unfolded again. The caller's ``x`` is never written to,
    and gradients reach ``x`` and every convolution. conv_layers: the seed's ``model.conv_layers``
    (any sequence of modules mapping (N, C, H, W) to (N, C', H, W)).
    """
    check_rank("x", x, 5, "(B, T, C, H, W)")
    layers = list(conv_layers)
    first = getattr(layers[0], "in_channels", None) if layers else None
    if first is not None and x.shape[2] != first:
        fail("x", f"{first} channel(s) for the first layer, shape (B, T, {first}, H, W)", f"shape {tuple(x.shape)}")
    B, T, C, H, W = x.shape
    h = x.reshape(B * T, C, H, W)  # frames side by side in the batch
    for conv_layer in layers:
        h = F.relu(conv_layer(h))  # (B·T, C', H, W), a new tensor each time
    return h.reshape(B, T, *h.shape[1:])


class PatchedVideoDiffusionModel(VideoDiffusionModel):
    """The seed's model with bugs 1-4 fixed and bug 5 kept: ``t`` is still ignored.

    Same layers as the seed; ``forward`` (x (B, T, C, H, W), t (B,)) -> (B, T, out_channels, H, W):

    * convolutions build new tensors (no in-place writes), all frames at once: :func:`encode_frames`;
    * the LSTM runs along time at every pixel: features (B, T, hid, H, W) -> (B·H·W, T, hid),
      and its outputs are put back as maps (B·T, hid, H, W) before ``output_layer``.

    It trains and backpropagates, but its output is the same for every ``t``
    (:func:`seed_model_ignores_t`), so it cannot serve as a denoiser across noise levels.
    """

    def forward(self, x, t):
        check_rank("x", x, 5, "(B, T, C, H, W)")
        if x.shape[2] != self.in_channels:
            fail("x", f"{self.in_channels} channel(s), shape (B, T, {self.in_channels}, H, W)",
                 f"shape {tuple(x.shape)}")
        B, T, C, H, W = x.shape
        features = encode_frames(self.conv_layers, x)  # (B, T, hid, H, W), x untouched
        sequences = features.permute(0, 3, 4, 1, 2)  # (B, H, W, T, hid)
        sequences = sequences.reshape(B * H * W, T, self.hidden_dim)
        output, _ = self.lstm(sequences)  # (B·H·W, T, hid); zero initial state by default
        maps = output.reshape(B, H, W, T, self.hidden_dim).permute(0, 3, 4, 1, 2)  # (B, T, hid, H, W)
        out = self.output_layer(maps.reshape(B * T, self.hidden_dim, H, W))
        return out.reshape(B, T, self.out_channels, H, W)


def seed_model_ignores_t(seed: int = 0) -> bool:
    """True when the patched seed model gives the same output for t = 0 and t = 999 (it does).

    Builds a small :class:`PatchedVideoDiffusionModel` (1 -> 1 channel, 2 layers, hidden 8) from
    ``seed``, runs one random video (B=2, T=3, 1, 8, 8) with two different timesteps, and compares
    the outputs exactly.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = PatchedVideoDiffusionModel(in_channels=1, out_channels=1, num_layers=2, hidden_dim=8)
    x = torch.randn(2, 3, 1, 8, 8, generator=generator)
    with torch.no_grad():
        early = model(x, torch.zeros(2, dtype=torch.long))
        late = model(x, torch.full((2,), 999, dtype=torch.long))
    return bool(torch.equal(early, late))
