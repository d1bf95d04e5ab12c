"""Convolution building blocks shared by every model family.

All layers take and return NHWC arrays. They reproduce PyTorch semantics that
`flax.linen.Conv` does not offer directly:

* `Conv` pads explicitly (`'reflect'` or `'zeros'`) and then runs a VALID
  convolution, which is what PyTorch `Conv2d(padding=p, padding_mode=...)` does.
* `ConvTranspose` reproduces PyTorch `ConvTranspose2d(k, stride, padding,
  output_padding)` exactly, including the output size.
* Both default to PyTorch's initialisation (kaiming-uniform with a = sqrt(5) for
  the kernel, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias), so a model
  trained from scratch starts like its PyTorch original.

Kernel layouts (what the converters in `inpaint_jax.convert` rely on):

* `Conv.kernel`: (kh, kw, in, out), the same HWIO layout as `nn.Conv`.
  From a PyTorch OIHW weight: `w.transpose(2, 3, 1, 0)`.
* `ConvTranspose.kernel`: (kh, kw, in, out) with
  `kernel[a, b, i, o] == torch_weight[i, o, a, b]`, i.e. PyTorch's IOHW weight
  transposed with `w.transpose(2, 3, 0, 1)` and *not* flipped; the spatial flip
  happens in the forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Initializer = Any
IntOr2 = int | Sequence[int]
Pad = int | Sequence[int] | Sequence[Sequence[int]]

PADDING_MODES = ("reflect", "zeros")


def _pair(v: IntOr2, what: str) -> tuple[int, int]:
  if isinstance(v, int):
    return (v, v)
  v = tuple(int(a) for a in v)
  if len(v) != 2:
    raise ValueError(f"{what} must be an int or a pair, got {v}")
  return v  # type: ignore[return-value]


def _pad_pairs(pad: Pad) -> tuple[tuple[int, int], tuple[int, int]]:
  """Normalises `pad` to ((top, bottom), (left, right))."""
  if isinstance(pad, int):
    return ((pad, pad), (pad, pad))
  pad = tuple(pad)
  if len(pad) != 2:
    raise ValueError(f"padding must be an int, (ph, pw) or ((t, b), (l, r)); got {pad}")
  out = []
  for p in pad:
    if isinstance(p, int):
      out.append((p, p))
    else:
      lo, hi = p
      out.append((int(lo), int(hi)))
  return (out[0], out[1])


def pad2d(x: Array, pad: Pad, mode: str = "zeros") -> Array:
  """Pads the two spatial axes of an NHWC array.

  Args:
    x: (N, H, W, C).
    pad: an int (all sides), (ph, pw) (symmetric per axis) or
      ((top, bottom), (left, right)).
    mode: 'reflect' (PyTorch `ReflectionPad2d` / `padding_mode='reflect'`,
      the edge pixel is not repeated) or 'zeros'.

  Returns:
    (N, H + top + bottom, W + left + right, C).
  """
  if mode not in PADDING_MODES:
    raise ValueError(f"padding mode must be one of {PADDING_MODES}, got {mode!r}")
  (top, bottom), (left, right) = _pad_pairs(pad)
  if top == bottom == left == right == 0:
    return x
  widths = ((0, 0), (top, bottom), (left, right), (0, 0))
  if mode == "reflect":
    # PyTorch refuses reflect padding >= the size; jnp.pad would silently
    # reflect more than once, so fail loudly instead.
    h, w = x.shape[1], x.shape[2]
    if max(top, bottom) >= h or max(left, right) >= w:
      raise ValueError(
          f"reflect padding {(top, bottom, left, right)} needs a larger input than {h}x{w}")
    return jnp.pad(x, widths, mode="reflect")
  return jnp.pad(x, widths)


def torch_kernel_init(in_axis: int = -2, out_axis: int = -1) -> Initializer:
  """PyTorch's default conv weight init: kaiming_uniform(a=sqrt(5)).

  That is U(-b, b) with b = 1/sqrt(fan_in), where fan_in is the product of the
  `in_axis` size and the receptive field.
  """
  return nn.initializers.variance_scaling(
      1.0 / 3.0, "fan_in", "uniform", in_axis=in_axis, out_axis=out_axis)


def torch_bias_init(fan_in: int) -> Initializer:
  """PyTorch's default conv bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / max(fan_in, 1) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Conv(nn.Module):
  """2-D convolution with explicit padding, like PyTorch `nn.Conv2d`.

  Attributes:
    features: output channels.
    kernel_size: int or (kh, kw).
    strides: int or (sh, sw).
    padding: int, (ph, pw) or ((top, bottom), (left, right)), applied with
      `padding_mode` before a VALID convolution.
    padding_mode: 'zeros' or 'reflect'.
    kernel_dilation: int or (dh, dw).
    use_bias: whether to add a bias.
    dtype: computation dtype (None: promote input and params).
    param_dtype: dtype of the parameters.
    kernel_init: None for PyTorch's default init.
    bias_init: None for PyTorch's default init.

  Params: `kernel` (kh, kw, in, out) and, with `use_bias`, `bias` (out,).
  """

  features: int
  kernel_size: IntOr2
  strides: IntOr2 = 1
  padding: Pad = 0
  padding_mode: str = "zeros"
  kernel_dilation: IntOr2 = 1
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Initializer | None = None
  bias_init: Initializer | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """(N, H, W, Cin) -> (N, H', W', features)."""
    kh, kw = _pair(self.kernel_size, "kernel_size")
    cin = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init or torch_kernel_init(),
                        (kh, kw, cin, self.features), self.param_dtype)
    bias = None
    if self.use_bias:
      bias = self.param("bias", self.bias_init or torch_bias_init(cin * kh * kw),
                        (self.features,), self.param_dtype)
    x = pad2d(x, self.padding, self.padding_mode)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = lax.conv_general_dilated(
        x, kernel,
        window_strides=_pair(self.strides, "strides"),
        padding="VALID",
        rhs_dilation=_pair(self.kernel_dilation, "kernel_dilation"),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if bias is not None:
      y = y + bias
    return y


class ConvTranspose(nn.Module):
  """PyTorch `nn.ConvTranspose2d(k, stride, padding, output_padding)`, NHWC.

  Output size per spatial axis: (H - 1) * stride - 2 * padding + k + output_padding.
  Computed as a stride-1 convolution over the input dilated by `strides`,
  padded (k - 1 - p) before and (k - 1 - p + output_padding) after, with the
  kernel flipped in both spatial axes.

  Attributes:
    features: output channels.
    kernel_size: int or (kh, kw).
    strides: int or (sh, sw).
    padding: int or (ph, pw) (PyTorch's symmetric `padding`; zeros).
    output_padding: int or (oh, ow), extra rows/cols at the bottom/right.
    use_bias: whether to add a bias.
    dtype: computation dtype (None: promote input and params).
    param_dtype: dtype of the parameters.
    kernel_init: None for PyTorch's default init (fan_in = out * kh * kw, as
      PyTorch computes it from the weight's second axis).
    bias_init: None for PyTorch's default init.

  Params: `kernel` (kh, kw, in, out), equal to the PyTorch IOHW weight
  transposed by (2, 3, 0, 1) (no flip), and `bias` (out,).
  """

  features: int
  kernel_size: IntOr2
  strides: IntOr2 = 1
  padding: IntOr2 = 0
  output_padding: IntOr2 = 0
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Initializer | None = None
  bias_init: Initializer | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """(N, H, W, Cin) -> (N, H', W', features), H' as in the class docstring."""
    kh, kw = _pair(self.kernel_size, "kernel_size")
    sh, sw = _pair(self.strides, "strides")
    ph, pw = _pair(self.padding, "padding")
    oh, ow = _pair(self.output_padding, "output_padding")
    if ph > kh - 1 or pw > kw - 1:
      raise ValueError(f"padding {(ph, pw)} larger than kernel_size - 1 is not supported")
    if oh >= max(sh, 1) or ow >= max(sw, 1):
      # Same rule as PyTorch: output_padding must be smaller than the stride.
      raise ValueError(f"output_padding {(oh, ow)} must be smaller than strides {(sh, sw)}")
    cin = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init or torch_kernel_init(in_axis=-1, out_axis=-2),
                        (kh, kw, cin, self.features), self.param_dtype)
    bias = None
    if self.use_bias:
      bias = self.param("bias", self.bias_init or torch_bias_init(self.features * kh * kw),
                        (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = lax.conv_general_dilated(
        x, kernel[::-1, ::-1],
        window_strides=(1, 1),
        padding=((kh - 1 - ph, kh - 1 - ph + oh), (kw - 1 - pw, kw - 1 - pw + ow)),
        lhs_dilation=(sh, sw),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if bias is not None:
      y = y + bias
    return y


def same_padding(kernel_size: int, stride: int) -> tuple[int, int]:
  """TF-"SAME" padding of a conv as a fixed (before, after) pair per axis.

  `k - stride` pixels in total, the odd one after: k7 s2 -> (2, 3), k5 s2 -> (1, 2),
  k3 s2 -> (0, 1), k3 s1 -> (1, 1), k1 s1 -> (0, 0). For inputs divisible by the
  stride this is exactly XLA's `padding='SAME'`; unlike 'SAME' it does not depend on
  the input size, which is how PyTorch ports of TF models (e.g. DFNet's
  `Conv2dSame`) implement it.
  """
  total = max(kernel_size - stride, 0)
  return (total // 2, total - total // 2)


def add_coord_channels(x: Array) -> Array:
  """CoordConv (Liu et al., 2018): appends x and y coordinate channels in [-1, 1].

  Args:
    x: (N, H, W, C).

  Returns:
    (N, H, W, C + 2); channel C is the column coordinate (-1 at the left edge, 1 at
    the right), channel C + 1 the row coordinate (-1 at the top). A size-1 axis
    gets 0.
  """
  n, h, w, _ = x.shape

  def coords(k):
    return jnp.linspace(-1.0, 1.0, k, dtype=x.dtype) if k > 1 else jnp.zeros((1,), x.dtype)

  xx = jnp.broadcast_to(coords(w)[None, None, :, None], (n, h, w, 1))
  yy = jnp.broadcast_to(coords(h)[None, :, None, None], (n, h, w, 1))
  return jnp.concatenate([x, xx, yy], axis=-1)
