"""Partial convolution with mask update (Liu et al., ECCV 2018), NHWC.

Semantics of NVIDIA's reference `PartialConv2d`, which RFR-Net uses with
`multi_channel=True` and no bias:

* `count = conv(mask, ones)` over the window (and, with `multi_channel`, over every
  input channel), with the same stride, padding and dilation as the convolution.
  The mask is zero-padded, so pixels outside the image count as holes.
* `ratio = window_size / (count + 1e-8)` with `window_size = Cin * kh * kw`
  (`multi_channel`) or `kh * kw` (single-channel mask).
* `new_mask = clip(count, 0, 1)` and `ratio = ratio * new_mask`.
* without bias: `out = conv(x * mask) * ratio`;
  with bias:    `out = (conv(x * mask) * ratio + bias) * new_mask`, i.e. the bias is
  added after the renormalisation.

So the output is exactly zero wherever the updated mask is 0. Like the reference
(which computes the mask update under `torch.no_grad()`), no gradient flows
through `count`, `ratio` or `new_mask`; the gradient with respect to `x` (and to
the mask through `x * mask`) does flow.

Mask convention: 1 = valid (known) pixel, 0 = hole. With `multi_channel` the mask
has the input's channel count and the new mask has `features` identical channels;
otherwise the mask has one channel and so has the new mask.

Params: `kernel` (kh, kw, Cin, features) (PyTorch OIHW weight transposed by
(2, 3, 1, 0), as `layers.Conv`) and, with `use_bias`, `bias` (features,).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from inpaint_jax.models.layers import (
    ConvFields,
    IntOr2,
    Pad,
    _conv_valid,
    _pad_pairs,
    _pair,
    conv_params,
    pad2d,
)

Array = jax.Array

# The reference's stabiliser in `window_size / (count + eps)`.
RATIO_EPS = 1e-8


def mask_update(mask: Array, kernel_size: IntOr2, strides: IntOr2 = 1, padding: Pad = 0,
                kernel_dilation: IntOr2 = 1, *, window_channels: int | None = None
                ) -> tuple[Array, Array]:
  """The mask half of a partial convolution: renormalisation ratio and new mask.

  Args:
    mask: (N, H, W, Cm), 1 = valid. All Cm channels are summed (the multi-channel
      rule; pass a single channel for the single-channel rule).
    kernel_size, strides, padding, kernel_dilation: those of the convolution.
    window_channels: channels the window spans (default Cm): window size =
      window_channels * kh * kw.

  Returns:
    (ratio, new_mask), both (N, H', W', 1) in float32 (float64 for float64 masks),
    with `ratio` already multiplied by `new_mask`; no gradient flows through them.
  """
  kh, kw = _pair(kernel_size, "kernel_size")
  dtype = jnp.promote_types(mask.dtype, jnp.float32)
  # Summing the channels first and box-filtering once equals the reference's
  # convolution with a ones kernel (exactly so for binary masks: integer sums).
  m = jnp.sum(lax.stop_gradient(mask).astype(dtype), axis=-1, keepdims=True)
  m = pad2d(m, _pad_pairs(padding), "zeros")
  sh, sw = _pair(strides, "strides")
  dh, dw = _pair(kernel_dilation, "kernel_dilation")
  count = lax.reduce_window(m, 0.0, lax.add, (1, kh, kw, 1), (1, sh, sw, 1),
                            "VALID", window_dilation=(1, dh, dw, 1))
  c = mask.shape[-1] if window_channels is None else window_channels
  new_mask = jnp.clip(count, 0.0, 1.0)
  ratio = (c * kh * kw) / (count + RATIO_EPS) * new_mask
  return ratio, new_mask


class PartialConv(ConvFields):
  """Partial convolution with mask update, `__call__(x, mask) -> (out, new_mask)`.

  Attributes (and those of `layers.ConvFields`, with `Conv2d`'s default init; the bias
  is added after the renormalisation, so it is zero where the new mask is 0):
    strides: int or (sh, sw).
    padding: int, (ph, pw) or ((top, bottom), (left, right)); zeros for both the
      features and the mask (PyTorch's symmetric `padding=p` is the int form).
    kernel_dilation: int or (dh, dw).
    multi_channel: True: the mask has Cin channels, all summed in the window, and
      the new mask has `features` channels. False: one-channel mask in and out.
  """

  strides: IntOr2 = 1
  padding: Pad = 0
  kernel_dilation: IntOr2 = 1
  multi_channel: bool = False

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None) -> tuple[Array, Array]:
    """Applies the partial convolution.

    Args:
      x: (N, H, W, Cin) features.
      mask: (N, H, W, Cin) with `multi_channel`, else (N, H, W, 1) (broadcast over
        the channels); 1 = valid. None means all valid (the input is then used
        as is, like the reference).

    Returns:
      out: (N, H', W', features).
      new_mask: (N, H', W', features) with `multi_channel`, else (N, H', W', 1),
        in the dtype of `out`.
    """
    kh, kw = _pair(self.kernel_size, "kernel_size")
    cin = x.shape[-1]
    want = cin if self.multi_channel else 1
    if mask is not None and (mask.ndim != 4 or mask.shape[:3] != x.shape[:3]
                             or mask.shape[-1] != want):
      raise ValueError(f"{self.name}: mask shape {mask.shape} does not fit input {x.shape} "
                       f"(multi_channel={self.multi_channel} needs {want} mask channel(s))")
    kernel, bias = conv_params(self, cin)
    if mask is None:
      mask = jnp.ones(x.shape[:3] + (want,), x.dtype)
    else:
      x = x * mask.astype(x.dtype)
    ratio, new_mask = mask_update(mask, (kh, kw), self.strides, self.padding,
                                  self.kernel_dilation, window_channels=want)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = _conv_valid(x, kernel, _pair(self.strides, "strides"),
                    _pair(self.kernel_dilation, "kernel_dilation"), self.padding)
    y = y * ratio.astype(y.dtype)
    new_mask = new_mask.astype(y.dtype)
    if bias is not None:
      y = (y + bias) * new_mask
    if self.multi_channel:
      new_mask = jnp.broadcast_to(new_mask, y.shape)
    return y, new_mask
