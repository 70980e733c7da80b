"""Look inside a network: how many parameters it has, and which frames its temporal attention looks at.

* :func:`count_parameters` -- the trainable numbers of a model (every parameter tensor's numel).
* :func:`temporal_attention_weights` / :func:`capture_temporal_attention` -- the attention maps of
  :class:`course_lib.models.unet3d.TemporalAttention`. At every pixel p and for every head the layer
  computes a T x T matrix of weights, softmax over keys j of q_i·k_j/√d + b[j − i] (Vaswani et al.
  2017, eq. 1, plus the relative position bias b), with -inf off the diagonal in image mode. It uses
  the weights and forgets them; :func:`temporal_attention_weights` recomputes them from the layer's
  input with the layer's own parameters, and :func:`capture_temporal_attention` does so for every
  temporal attention of a model during one forward pass. ``tests/test_attention_maps.py`` checks that
  these weights rebuild the layer's output exactly, so the pictures show what the model computes.
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib._validation import check_positive_int, check_rank, fail
from course_lib.models.unet3d import TemporalAttention


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def temporal_attention_weights(layer: TemporalAttention, h: torch.Tensor, frames: int,
                               image_mode: bool = False) -> torch.Tensor:
    """Attention weights of ``layer`` on input h (B·T, C, H, W) -> (B, heads, H·W, T_query, T_key).

    Each row (fixed query frame i) sums to 1 over the key frames j. ``image_mode``: every frame
    attends only to itself (the identity matrix).
    """
    if not isinstance(layer, TemporalAttention):
        fail("layer", "a TemporalAttention", type(layer).__name__)
    check_rank("h", h, 4, "(B·T, C, H, W)")
    check_positive_int("frames", frames)
    BT, C, H, W = h.shape
    if BT % frames or C != layer.channels:
        fail("h", f"(B·T, {layer.channels}, H, W) with B·T a multiple of frames={frames}", f"shape {tuple(h.shape)}")
    B, T, heads, d = BT // frames, frames, layer.num_heads, C // layer.num_heads
    with torch.no_grad():
        q, k, _ = layer.qkv(layer.norm(h)).reshape(B, T, 3, heads, d, H * W).unbind(2)  # each (B, T, heads, d, P)
        logits = torch.einsum("bihdp,bjhdp->bhpij", q, k) * d**-0.5  # (B, heads, P, T_query, T_key)
        bias = layer.position_bias(T)  # (heads, T, T): b[j - i]
        if image_mode:
            bias = bias.masked_fill(~torch.eye(T, dtype=torch.bool, device=h.device), float("-inf"))
        return torch.softmax(logits + bias[None, :, None].to(logits.dtype), dim=-1)


def capture_temporal_attention(model: nn.Module, x: torch.Tensor, t: torch.Tensor,
                               image_mode: bool = False) -> dict[str, torch.Tensor]:
    """Run ``model(x, t, image_mode=image_mode)`` once -> {layer name: weights (B, heads, H·W, T, T)}.

    One entry per :class:`TemporalAttention` of the model, in the order they ran (the way down,
    the middle, the way up); names are the modules' names in the model (e.g. "middle_in.temporal").
    """
    names = {module: name for name, module in model.named_modules() if isinstance(module, TemporalAttention)}
    if not names:
        fail("model", "a model with TemporalAttention layers (a UNet3D)", type(model).__name__)
    captured: dict[str, torch.Tensor] = {}

    def hook(module, args, kwargs):
        h, frames = args[0], args[1] if len(args) > 1 else kwargs["frames"]
        mode = args[2] if len(args) > 2 else kwargs.get("image_mode", False)
        captured[names[module]] = temporal_attention_weights(module, h, frames, mode)

    handles = [module.register_forward_pre_hook(hook, with_kwargs=True) for module in names]
    try:
        with torch.no_grad():
            model(x, t, image_mode=image_mode)
    finally:
        for handle in handles:
            handle.remove()
    return captured
