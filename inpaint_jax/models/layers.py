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

import contextlib
import contextvars
import dataclasses
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
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


@functools.lru_cache(maxsize=256)
def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
  """(n_in, n_out) float32: column j holds the weights of output sample j.

  The rule of `jax.image.resize(..., "bilinear", antialias=False)` and PyTorch's
  `F.interpolate(mode="bilinear", align_corners=False)`: half-pixel centres, source
  position (j + 0.5) * n_in / n_out - 0.5, weights normalised over the taps inside the
  input. Computed on the host in float32 with the operations of jax's
  `compute_weight_mat`, so the matrix is bit for bit the one `jax.image.resize` builds.
  """
  f32 = np.float32
  inv_scale = f32(1.0 / (n_out / n_in))
  sample = (np.arange(n_out, dtype=f32) + f32(0.5)) * inv_scale - f32(0.0) - f32(0.5)
  x = np.abs(sample[None, :] - np.arange(n_in, dtype=f32)[:, None])
  w = np.maximum(f32(0.0), f32(1.0) - np.abs(x))
  total = np.sum(w, axis=0, keepdims=True, dtype=f32)
  w = np.where(np.abs(total) > 1000.0 * float(np.finfo(f32).eps),
               w / np.where(total != 0, total, f32(1.0)), f32(0.0))
  inside = (sample >= -0.5) & (sample <= n_in - 0.5)
  return np.where(inside[None, :], w, f32(0.0)).astype(f32)


def resize_bilinear(x: Array, height: int, width: int) -> Array:
  """(N, H, W, C) -> (N, height, width, C): bilinear, align_corners=False, no anti-aliasing.

  `jax.image.resize(x, ..., "bilinear", antialias=False)` written as its two constant
  weight matrices (`bilinear_weights`) in one einsum, which is what that function computes;
  written out so that the batch may be symbolic in exported graphs (ONNX converters take
  the einsum, not a resize of a symbolic shape).
  """
  h, w = x.shape[1:3]
  if (h, w) == (height, width):
    return x
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32)) if not jnp.issubdtype(
      x.dtype, jnp.floating) else x
  specs, matrices, out = ["nhwc"], [], list("nhwc")
  for axis, n_in, n_out, new in ((1, h, height, "i"), (2, w, width, "j")):
    if n_in != n_out:
      specs.append("nhwc"[axis] + new)
      matrices.append(jnp.asarray(bilinear_weights(n_in, n_out), x.dtype))
      out[axis] = new
  spec = ",".join(specs) + "->" + "".join(out)
  return jnp.einsum(spec, x, *matrices, precision=lax.Precision.HIGHEST)


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


def _tap_slice(x: Array, a: int, b: int, out_hw: tuple[int, int], strides: tuple[int, int],
               dilation: tuple[int, int]) -> Array:
  """x[:, a*dh + sh*i, b*dw + sw*j] for i < ho, j < wo: what tap (a, b) of a VALID conv reads."""
  (ho, wo), (sh, sw), (dh, dw) = out_hw, strides, dilation
  return x[:, a * dh: a * dh + (ho - 1) * sh + 1: sh, b * dw: b * dw + (wo - 1) * sw + 1: sw]


def _untap(d: Array, a: int, b: int, in_hw: tuple[int, int], strides: tuple[int, int],
           dilation: tuple[int, int]) -> Array:
  """Transpose of `_tap_slice`: d (N, ho, wo, C) placed back on the (N, H, W, C) grid."""
  (h, w), (sh, sw), (dh, dw) = in_hw, strides, dilation
  ho, wo = d.shape[1:3]
  lo_h, lo_w = a * dh, b * dw
  hi_h = h - lo_h - (ho - 1) * sh - 1
  hi_w = w - lo_w - (wo - 1) * sw - 1
  return lax.pad(d, jnp.zeros((), d.dtype),
                 ((0, 0, 0), (lo_h, hi_h, sh - 1), (lo_w, hi_w, sw - 1), (0, 0, 0)))


def _lax_conv(x: Array, kernel: Array, strides: tuple[int, int],
              dilation: tuple[int, int]) -> Array:
  """XLA's VALID convolution, NHWC x HWIO -> NHWC."""
  return lax.conv_general_dilated(x, kernel, window_strides=strides, padding="VALID",
                                  rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _matmul(a: Array, b: Array) -> Array:
  return lax.dot_general(a, b, (((a.ndim - 1,), (0,)), ((), ())))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_patch_grads(x: Array, kernel: Array, strides: tuple[int, int],
                      dilation: tuple[int, int]) -> Array:
  """VALID conv (XLA's forward) whose gradients are matrix products over patches.

  XLA's CPU convolution computes the filter gradient as a convolution whose window
  is the whole feature map, and the input gradient of a strided conv as an
  lhs-dilated convolution; both run far below matmul speed at large spatial sizes.
  Here dW = patches(x)^T @ dy and dx = the patches of dy @ W^T put back on the grid
  (one fused sum of kh*kw padded slices).
  """
  return _lax_conv(x, kernel, strides, dilation)


def _conv_patch_grads_fwd(x, kernel, strides, dilation):
  return _conv_patch_grads(x, kernel, strides, dilation), (x, kernel)


def _conv_patch_grads_bwd(strides, dilation, res, dy):
  x, kernel = res
  kh, kw, cin, cout = kernel.shape
  out_hw = dy.shape[1:3]
  taps = [(a, b) for a in range(kh) for b in range(kw)]
  patches = jnp.concatenate([_tap_slice(x, a, b, out_hw, strides, dilation) for a, b in taps],
                            axis=-1).reshape(-1, kh * kw * cin)
  dy2 = dy.reshape(-1, cout)
  dk = lax.dot_general(patches, dy2, (((0,), (0,)), ((), ()))).reshape(kernel.shape)
  dp = _matmul(dy2, kernel.reshape(-1, cout).T).reshape(dy.shape[:3] + (kh * kw, cin))
  dx = None
  for t, (a, b) in enumerate(taps):
    part = _untap(dp[..., t, :], a, b, x.shape[1:3], strides, dilation)
    dx = part if dx is None else dx + part
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv_patch_grads.defvjp(_conv_patch_grads_fwd, _conv_patch_grads_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _shifted_sum(z: Array, out_hw: tuple[int, int], dilation: tuple[int, int]) -> Array:
  """sum over taps (a, b) of z[:, a*dh + i, b*dw + j, a, b]: (N, ho, wo, C).

  z: (N, H, W, kh, kw, C), every tap's contribution at every input pixel. Its
  gradient gathers dy into each tap's slot (a concatenation: every element written
  once) instead of the sum of kh*kw padded copies that autodiff would build.
  """
  kh, kw = z.shape[3:5]
  y = None
  for a in range(kh):
    for b in range(kw):
      part = _tap_slice(z[:, :, :, a, b], a, b, out_hw, (1, 1), dilation)
      y = part if y is None else y + part
  return y


def _shifted_sum_fwd(z, out_hw, dilation):
  return _shifted_sum(z, out_hw, dilation), z.shape


def _shifted_sum_bwd(out_hw, dilation, shape, dy):
  n, h, w, kh, kw, c = shape
  dh, dw = dilation
  ho, wo = out_hw
  ph, pw = dh * (kh - 1), dw * (kw - 1)
  # dz[:, i, j, a, b] = dy[:, i - a*dh, j - b*dw] (0 outside): slices of a padded dy.
  dyp = jnp.pad(dy, ((0, 0), (ph, h - ho), (pw, w - wo), (0, 0)))
  parts = [dyp[:, ph - a * dh: ph - a * dh + h, pw - b * dw: pw - b * dw + w]
           for a in range(kh) for b in range(kw)]
  return (jnp.stack(parts, axis=3).reshape(shape),)


_shifted_sum.defvjp(_shifted_sum_fwd, _shifted_sum_bwd)

@contextlib.contextmanager
def _switched_on(flag: contextvars.ContextVar[bool]) -> Iterator[None]:
  """Sets a trace-time switch for the duration of a `with` block."""
  token = flag.set(True)
  try:
    yield
  finally:
    flag.reset(token)


_LOOP_CONV_GRADS: contextvars.ContextVar[bool] = contextvars.ContextVar("loop_conv_grads",
                                                                       default=False)


def loop_conv_grads() -> contextlib.AbstractContextManager[None]:
  """Within this context, stride-1 convolutions get explicitly canonical gradients.

  Enter it while tracing the body of a loop (`nn.scan`, `lax.scan`) that is
  differentiated. XLA's CPU backend derives a convolution's gradients as convolutions
  with permuted dimension labels and, outside a loop, lays their operands out so that
  they run as fast (Eigen) convolutions. Inside a while-loop body it keeps the
  permuted labels (filter gradient `f01b_i01o->01bf`), which fall to a naive loop at
  ~1 GFLOP/s: RFR-Net's recurrence spent over 90 % of its train step there. Under this
  context `_conv_valid` writes both gradients as convolutions in the canonical
  NHWC/HWIO form with the transposes explicit (`_conv_explicit_grads`); outside a loop
  that is what XLA already does, so layers outside loops keep XLA's own gradients.
  """
  return _switched_on(_LOOP_CONV_GRADS)


_UNROLL_LOOPS: contextvars.ContextVar[bool] = contextvars.ContextVar("unroll_loops",
                                                                    default=False)


def unrolled_loops() -> contextlib.AbstractContextManager[None]:
  """Within this context, modules unroll their weight-shared loops when nothing is carried.

  `flax.linen.scan` reads its carry's shapes with `jnp.shape`, which graph converters
  (jax2onnx) replace by a traced op, so a scanned body cannot be converted. The ONNX export
  traces under this context: RFR-Net (and DGFNet's RFR-Net branch) then call their
  recurrence as a Python loop over the same module (same variables, same operations) when
  no BatchNorm statistics are carried (eval mode). Everything else traces as usual.
  """
  return _switched_on(_UNROLL_LOOPS)


def loops_unrolled() -> bool:
  """True inside `unrolled_loops()`."""
  return _UNROLL_LOOPS.get()


_PLAIN_CONVS: contextvars.ContextVar[bool] = contextvars.ContextVar("plain_convs",
                                                                   default=False)


def plain_convs() -> contextlib.AbstractContextManager[None]:
  """Within this context every convolution is one `lax.conv_general_dilated`.

  The faster CPU forms (a few output channels as shifted sums of per-tap products,
  strided convs with product gradients) are for XLA; a graph converter turns the shifted
  sums into a slice, squeeze and add per tap, which for the small test models makes
  most of the ONNX graph (and its conversion time, which grows with the square of the
  graph). The ONNX export traces under this context; the sums are the same up to the
  order of the float additions.
  """
  return _switched_on(_PLAIN_CONVS)


def _conv_stride1(x: Array, kernel: Array, dilation: tuple[int, int],
                  pads: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  return lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding=pads,
                                  rhs_dilation=dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_explicit_grads(x: Array, kernel: Array, dilation: tuple[int, int],
                         pads: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  """Stride-1 conv of x zero-padded by `pads`, whose gradients are canonical NHWC/HWIO convs.

  Filter gradient: dk[a, b, i, o] = sum_{n, p, q} xp[n, p + a*dh, q + b*dw, i] dy[n, p, q, o]
  (xp the padded x), a convolution of x with the channels as batch, (Cin, H, W, N), by
  dy as an (ho, wo, N, Cout) kernel with window strides (dh, dw). Input gradient: the
  correlation of dy with the flipped kernel, in and out swapped (HWIO again), padded
  so that it yields the unpadded x's positions only.
  """
  return _conv_stride1(x, kernel, dilation, pads)


def _conv_explicit_grads_fwd(x, kernel, dilation, pads):
  return _conv_stride1(x, kernel, dilation, pads), (x, kernel)


def _conv_explicit_grads_bwd(dilation, pads, res, dy):
  x, kernel = res
  kh, kw = kernel.shape[:2]
  dh, dw = dilation
  (pt, pb), (pl, pr) = pads
  dy = dy.astype(x.dtype)
  dk = lax.conv_general_dilated(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3),
                                window_strides=dilation, padding=pads,
                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
  eh, ew = dh * (kh - 1), dw * (kw - 1)
  dx = lax.conv_general_dilated(dy, flipped, window_strides=(1, 1),
                                padding=((eh - pt, eh - pb), (ew - pl, ew - pr)),
                                rhs_dilation=dilation,
                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return dx, dk.transpose(1, 2, 0, 3).astype(kernel.dtype)


_conv_explicit_grads.defvjp(_conv_explicit_grads_fwd, _conv_explicit_grads_bwd)

# The most patch memory a strided conv's matrix-product gradients may cost.
_PATCH_GRAD_MAX_BYTES = 512 * 2**20


def _conv_valid(x: Array, kernel: Array, strides: tuple[int, int],
                dilation: tuple[int, int], zero_pad: Pad = 0) -> Array:
  """VALID NHWC/HWIO convolution of x zero-padded by `zero_pad` (`pad2d`'s forms).

  Lowered to the fastest form for XLA's CPU backend:

  * 1x1, stride 1: a plain matrix product (its gradients are matrix products too,
    which XLA runs faster than the equivalent convolution gradients).
  * Few output channels (cout < 8, e.g. LaMa's 7x7 64 -> 3 output conv), stride 1:
    one matrix product to every tap's output at once, (N*H*W, cin) @ (cin,
    kh*kw*cout), then a sum of kh*kw shifted slices (`_shifted_sum`). XLA's
    convolution runs such layers at a few GFLOP/s because the output width is far
    below the vector and tile widths; the product runs at matmul speed.
  * Strided: XLA's convolution forward, gradients as matrix products over patches
    (`_conv_patch_grads`); XLA's own gradient of a strided conv is an lhs-dilated
    convolution that runs 1.1-1.4x slower at LaMa's down-sampling sizes.
  * Stride 1 inside `loop_conv_grads()` (a differentiated loop body): XLA's forward,
    gradients as canonical convolutions (`_conv_explicit_grads`, which pads inside
    the convolutions, so the input gradient is not computed on the padding: 1.6x fewer
    outputs for RFR-Net's dilated 3x3 convs of 16x16 maps), or, with few output pixels for
    the channels, as matrix products over patches.
  * Otherwise `lax.conv_general_dilated`.

  All forms compute the same sums; only the order of the float additions differs.
  """
  kh, kw, cin, cout = kernel.shape
  n, h, w, _ = x.shape
  (pt, pb), (pl, pr) = pads = _pad_pairs(zero_pad)
  h, w = h + pt + pb, w + pl + pr
  sh, sw = strides
  dh, dw = dilation
  ho = (h - dh * (kh - 1) - 1) // sh + 1
  wo = (w - dw * (kw - 1) - 1) // sw + 1
  # A symbolic batch size (`jax.export` with a polymorphic batch) cannot be compared
  # with the memory bounds; such exports are inference-only, so the gradient form does
  # not matter there.
  concrete = isinstance(n, int)
  if ((sh, sw) == (1, 1) and _LOOP_CONV_GRADS.get() and (kh, kw) != (1, 1)
      and not (concrete and 4 * n * ho * wo <= cout)):
    return _conv_explicit_grads(x, kernel, (dh, dw), pads)
  x = pad2d(x, pads)
  if _PLAIN_CONVS.get():
    return _lax_conv(x, kernel, strides, dilation)
  if (kh, kw, sh, sw) == (1, 1, 1, 1):
    return _matmul(x.reshape(-1, cin), kernel.reshape(cin, cout)).reshape(n, h, w, cout)
  if cout < 8 and kh * kw > 1 and (sh, sw) == (1, 1):
    # (cin, kh, kw, cout): column (a, b, o) is tap (a, b)'s contribution to output o.
    taps = kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    z = _matmul(x.reshape(-1, cin), taps).reshape(n, h, w, kh, kw, cout)
    return _shifted_sum(z, (ho, wo), (dh, dw))
  if concrete and (sh, sw) != (1, 1) and (
      n * ho * wo * kh * kw * cin * x.dtype.itemsize <= _PATCH_GRAD_MAX_BYTES):
    return _conv_patch_grads(x, kernel, (sh, sw), (dh, dw))
  if (sh, sw) == (1, 1) and _LOOP_CONV_GRADS.get() and (kh, kw) != (1, 1):
    # Few output pixels for the channels (RFR-Net's H/16 and H/8 layers at 64 px): the
    # patch products move far less data than the kernel-sized transposes of the
    # canonical form (1.4-2x faster per layer at 4x4 maps with 512-2048 channels).
    return _conv_patch_grads(x, kernel, (1, 1), (dh, dw))
  return _lax_conv(x, kernel, strides, dilation)


def _conv_transpose_phases(x: Array, kernel: Array, strides: tuple[int, int],
                           padding: tuple[int, int], out_hw: tuple[int, int]) -> Array:
  """PyTorch ConvTranspose2d as one stride-1 convolution to stride**2 output phases.

  Output row o = s*m + r (phase r) receives x[i] * w[k] for o = s*i - p + k, i.e.
  i = m + (r + p - k) / s for the taps k with (r + p - k) divisible by s. Every phase
  is a small stride-1 correlation of the *undilated* input, so all s*s of them are
  one convolution whose kernel holds, for offset d and phase r, the tap
  k = r + p - s*d (zero where no tap lands); a depth-to-space then interleaves the
  phases. The lhs-dilated formulation multiplies (s*s - 1)/(s*s) of its inputs by
  inserted zeros; this one does about 16/9 of the useful work for k=3, s=2.

  Args:
    x: (N, H, W, Cin).
    kernel: (kh, kw, Cin, Cout) with kernel[a, b] = PyTorch weight[:, :, a, b].
    strides: (sh, sw).
    padding: PyTorch's (ph, pw).
    out_hw: the PyTorch output size (Hout, Wout).

  Returns:
    (N, Hout, Wout, Cout).
  """
  n, h, w, cin = x.shape
  kh, kw, _, cout = kernel.shape
  plan = []
  for size, k, s, p, out in ((h, kh, strides[0], padding[0], out_hw[0]),
                             (w, kw, strides[1], padding[1], out_hw[1])):
    # phase r -> [(offset d, tap k)]
    taps = [[((r + p - t) // s, t) for t in range(k) if (r + p - t) % s == 0] for r in range(s)]
    ds = [d for phase in taps for d, _ in phase]
    d_min, d_max = min(ds), max(ds)
    m = -(-out // s)  # rows per phase
    lo = -d_min
    hi = m + (d_max - d_min) - size - lo
    plan.append((taps, d_min, d_max - d_min + 1, m, lo, hi, s))
  (taps_h, dmin_h, kh2, mh, lo_h, hi_h, sh), (taps_w, dmin_w, kw2, mw, lo_w, hi_w, sw) = plan
  # big[i, j, :, rh, rw, :] = kernel[tap of offset i in phase rh, tap of j in phase rw], or
  # zeros; built by stacking rather than scattered (`.at[].set`), which ONNX converters
  # expand into dozens of index-checking nodes per layer.
  tap_h = [{d - dmin_h: t for d, t in taps_h[r]} for r in range(sh)]
  tap_w = [{d - dmin_w: t for d, t in taps_w[r]} for r in range(sw)]
  zero = jnp.zeros((cin, cout), kernel.dtype)

  def block(i, j):   # (cin, sh * sw, cout)
    return jnp.stack([kernel[tap_h[rh][i], tap_w[rw][j]]
                      if i in tap_h[rh] and j in tap_w[rw] else zero
                      for rh in range(sh) for rw in range(sw)], axis=1)

  big = jnp.stack([jnp.stack([block(i, j) for j in range(kw2)]) for i in range(kh2)])
  big = big.reshape(kh2, kw2, cin, sh * sw * cout)
  # Negative pads crop: a slice, then a zero pad by the positive ones (not one lax.pad with
  # negative pads, which ONNX converters mishandle when the batch is symbolic).
  x = x[:, max(0, -lo_h):h - max(0, -hi_h), max(0, -lo_w):w - max(0, -hi_w)]
  x = jnp.pad(x, ((0, 0), (max(0, lo_h), max(0, hi_h)), (max(0, lo_w), max(0, hi_w)), (0, 0)))
  y = _conv_valid(x, big, (1, 1), (1, 1))  # (N, mh, mw, sh*sw*cout)
  y = y.reshape(n, mh, mw, sh, sw, cout).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(n, mh * sh, mw * sw, cout)[:, :out_hw[0], :out_hw[1]]


def _conv_transpose_taps(x: Array, kernel: Array, strides: tuple[int, int],
                         padding: tuple[int, int], out_hw: tuple[int, int]) -> Array:
  """PyTorch ConvTranspose2d as one product per tap and a strided scatter-add (col2im).

  Tap (a, b) of input pixel (i, j) lands on output (s*i - p + a, s*j - p + b): every
  tap's contribution x @ kernel[a, b] is computed for all pixels at once, (kh*kw, N*H*W,
  Cout), and placed on the output grid by an interior-padded `lax.pad`; the kh*kw
  placements are summed. Only useful multiplications are done and the kernel is read
  as it is stored, so this is the fast form for very small maps with many channels
  (RFR-Net's decoder at 4x4 and 8x8 with 768-1024 channels), where moving the kernel,
  not multiplying, is the cost.

  Args and result as `_conv_transpose_phases`.
  """
  n, h, w, cin = x.shape
  kh, kw, _, cout = kernel.shape
  (sh, sw), (ph, pw) = strides, padding
  z = jnp.einsum("mc,tco->tmo", x.reshape(n * h * w, cin), kernel.reshape(kh * kw, cin, cout))
  z = z.reshape(kh, kw, n, h, w, cout)
  y = None
  for a in range(kh):
    for b in range(kw):
      lo_h, lo_w = a - ph, b - pw
      hi_h = out_hw[0] - lo_h - (h - 1) * sh - 1
      hi_w = out_hw[1] - lo_w - (w - 1) * sw - 1
      # Negative pads crop (taps that land in PyTorch's padding).
      part = lax.pad(z[a, b], jnp.zeros((), z.dtype),
                     ((0, 0, 0), (lo_h, hi_h, sh - 1), (lo_w, hi_w, sw - 1), (0, 0, 0)))
      y = part if y is None else y + part
  return y


def _conv_transpose_subpixel(x: Array, kernel: Array, strides: tuple[int, int],
                             padding: tuple[int, int], out_hw: tuple[int, int]) -> Array:
  """PyTorch ConvTranspose2d as one small stride-1 convolution per output phase.

  As in `_conv_transpose_phases`, output row o = s*m + r (phase r) receives x[m + d] *
  w[k] for the taps k = r + p - s*d; those taps are every s-th one from the smallest,
  so phase r's kernel is `kernel[k_min::s]` reversed (d grows as k shrinks). Each of
  the s*s phases is its own convolution of the undilated input, so only the kernel's
  taps are multiplied (the single phase convolution pads every phase to the union of
  their offsets: 9/4 of the taps for k=4, s=2); a depth-to-space interleaves them.

  Args and result as `_conv_transpose_phases`; every phase must have a tap.
  """
  n, h, w, _ = x.shape
  kh, kw, _, cout = kernel.shape
  plans = []
  for size, k, s, p, out in ((h, kh, strides[0], padding[0], out_hw[0]),
                             (w, kw, strides[1], padding[1], out_hw[1])):
    m = -(-out // s)  # rows per phase
    # phase r -> (first tap, smallest offset d, largest offset)
    phases = []
    for r in range(s):
      taps = [t for t in range(k) if (r + p - t) % s == 0]
      phases.append((taps[0], (r + p - taps[-1]) // s, (r + p - taps[0]) // s))
    lo = max(0, -min(d_lo for _, d_lo, _ in phases))
    hi = max(0, m - 1 + max(d_hi for _, _, d_hi in phases) - (size - 1))
    plans.append((phases, m, lo, hi, s))
  (phases_h, mh, lo_h, hi_h, sh), (phases_w, mw, lo_w, hi_w, sw) = plans
  xp = jnp.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
  rows = []
  for t_h, dlo_h, dhi_h in phases_h:
    cols = []
    for t_w, dlo_w, dhi_w in phases_w:
      k_phase = kernel[t_h::sh, t_w::sw][::-1, ::-1]
      x_phase = xp[:, lo_h + dlo_h: lo_h + dhi_h + mh, lo_w + dlo_w: lo_w + dhi_w + mw]
      cols.append(_conv_valid(x_phase, k_phase, (1, 1), (1, 1)))  # (N, mh, mw, Cout)
    rows.append(jnp.stack(cols, axis=3))
  y = jnp.stack(rows, axis=2)  # (N, mh, sh, mw, sw, Cout)
  return y.reshape(n, mh * sh, mw * sw, cout)[:, :out_hw[0], :out_hw[1]]


class ConvFields(nn.Module):
  """The fields of a layer with a PyTorch-style kernel and bias, which `conv_params` reads.

  Shared by `Conv`, `ConvTranspose` and `partial_conv.PartialConv`. The fields after
  `kernel_size` are keyword-only: each layer adds its own geometry fields (strides,
  padding, ...) positionally after `kernel_size`, in PyTorch's argument order.

  Attributes:
    features: output channels.
    kernel_size: int or (kh, kw).
    use_bias: whether the layer has a bias.
    dtype: computation dtype (None: promote input and params).
    param_dtype: dtype of the parameters.
    kernel_init: None for PyTorch's default init of the layer.
    bias_init: None for PyTorch's default init of the layer.
  """

  features: int
  kernel_size: IntOr2
  _: dataclasses.KW_ONLY
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Initializer | None = None
  bias_init: Initializer | None = None


class Conv(ConvFields):
  """2-D convolution with explicit padding, like PyTorch `nn.Conv2d`.

  Attributes (and those of `ConvFields`):
    strides: int or (sh, sw).
    padding: int, (ph, pw) or ((top, bottom), (left, right)), applied with
      `padding_mode` before a VALID convolution.
    padding_mode: 'zeros' or 'reflect'.
    kernel_dilation: int or (dh, dw).

  Params: `kernel` (kh, kw, in, out) and, with `use_bias`, `bias` (out,).
  """

  strides: IntOr2 = 1
  padding: Pad = 0
  padding_mode: str = "zeros"
  kernel_dilation: IntOr2 = 1

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """(N, H, W, Cin) -> (N, H', W', features)."""
    kernel, bias = conv_params(self, x.shape[-1])
    if self.padding_mode == "zeros":
      return _conv_padded(self, x, kernel, bias, zero_pad=self.padding)
    return _conv_padded(self, pad2d(x, self.padding, self.padding_mode), kernel, bias)


def _conv_padded(conv: Conv, x: Array, kernel: Array, bias: Array | None,
                 zero_pad: Pad = 0) -> Array:
  """`conv`'s convolution of x (already padded, except for `zero_pad` zeros), with its
  strides, dilation and dtype."""
  x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=conv.dtype)
  y = _conv_valid(x, kernel, _pair(conv.strides, "strides"),
                  _pair(conv.kernel_dilation, "kernel_dilation"), zero_pad)
  return y if bias is None else y + bias


def conv_params(conv: ConvFields, cin: int, *, transposed: bool = False
                ) -> tuple[Array, Array | None]:
  """Declares `conv`'s `kernel` (kh, kw, cin, features) and `bias` (features,); returns them.

  Call it from a compact method of `conv`. The bias is None without `use_bias`.

  Args:
    conv: the layer.
    cin: input channels.
    transposed: PyTorch's `ConvTranspose2d` init, whose fan-in comes from the weight's
      second axis: features * kh * kw (else `Conv2d`'s, cin * kh * kw).
  """
  kh, kw = _pair(conv.kernel_size, "kernel_size")
  if transposed:
    kernel_init, fan_in = torch_kernel_init(in_axis=-1, out_axis=-2), conv.features * kh * kw
  else:
    kernel_init, fan_in = torch_kernel_init(), cin * kh * kw
  kernel = conv.param("kernel", conv.kernel_init or kernel_init,
                      (kh, kw, cin, conv.features), conv.param_dtype)
  bias = None
  if conv.use_bias:
    bias = conv.param("bias", conv.bias_init or torch_bias_init(fan_in),
                      (conv.features,), conv.param_dtype)
  return kernel, bias


class ConvParams(Conv):
  """A `Conv`'s parameters (same names, shapes and init) without the convolution.

  For `conv_sum`: called with the input channel count, returns (kernel, bias or None).
  """

  # pylint: disable=arguments-renamed

  @nn.compact
  def __call__(self, cin: int) -> tuple[Array, Array | None]:  # type: ignore[override]
    return conv_params(self, cin)


def conv_sum(xs: Sequence[Array], names: Sequence[str], **conv: Any) -> Array:
  """sum_i Conv(name=names[i], **conv)(xs[i]) as one convolution of the joined inputs.

  Call it inside a compact method: the parameters are declared under `names`, with
  the names, shapes and init that calling each `Conv` would give (a checkpoint does
  not see the difference). The inputs differ only in their channel counts; each is
  padded as `conv` says, the padded inputs and the kernels are concatenated along
  the input channels, and the biases (if any) are added. Why: one convolution over
  cin_1 + cin_2 channels is faster than two plus an add, mostly in the backward pass
  (LaMa's FFC `convl2l(x_l) + convg2l(x_g)`: forward + backward 20-35 % faster on a
  2-core CPU at 32x32).

  Args:
    xs: (N, H, W, cin_i) arrays.
    names: the parameter scope of each term.
    **conv: `Conv` attributes (features, kernel_size, strides, padding, ...).

  Returns:
    (N, H', W', features).
  """
  if len(xs) != len(names) or not xs:
    raise ValueError(f"conv_sum needs one name per input, got {len(names)} and {len(xs)}")
  spec = Conv(**conv, parent=None)
  kernels, biases, padded = [], [], []
  for x, name in zip(xs, names, strict=True):
    kernel, bias = ConvParams(**conv, name=name)(x.shape[-1])
    kernels.append(kernel)
    biases.append(bias)
    padded.append(pad2d(x, spec.padding, spec.padding_mode))
  # The terms share `use_bias`: every bias is None or every one is an array.
  bias = None if biases[0] is None else sum(biases[1:], biases[0])
  return _conv_padded(spec, jnp.concatenate(padded, axis=-1),
                      jnp.concatenate(kernels, axis=2), bias)


class ConvTranspose(ConvFields):
  """PyTorch `nn.ConvTranspose2d(k, stride, padding, output_padding)`, NHWC.

  Output size per spatial axis: (H - 1) * stride - 2 * padding + k + output_padding.
  Computed as one stride-1 convolution of the undilated input to stride**2 output
  phases, interleaved by a depth-to-space (see `_conv_transpose_phases`), which
  avoids the multiplications by inserted zeros of the lhs-dilated formulation. When the
  kernel size is a multiple of the stride (and larger), as one convolution per phase
  (`_conv_transpose_subpixel`), or, for very small maps with many channels (8 N*H*W <=
  Cin), as per-tap products placed on the output grid (`_conv_transpose_taps`).

  Attributes (and those of `ConvFields`; the default init's fan_in is out * kh * kw, as
  PyTorch computes it from the weight's second axis):
    strides: int or (sh, sw).
    padding: int or (ph, pw) (PyTorch's symmetric `padding`; zeros).
    output_padding: int or (oh, ow), extra rows/cols at the bottom/right.

  Params: `kernel` (kh, kw, in, out), equal to the PyTorch IOHW weight
  transposed by (2, 3, 0, 1) (no flip), and `bias` (out,).
  """

  strides: IntOr2 = 1
  padding: IntOr2 = 0
  output_padding: IntOr2 = 0

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
    kernel, bias = conv_params(self, x.shape[-1], transposed=True)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    h, w = x.shape[1:3]
    out_hw = ((h - 1) * sh - 2 * ph + kh + oh, (w - 1) * sw - 2 * pw + kw + ow)
    n = x.shape[0]
    if kh % sh or kw % sw or (kh, kw) == (sh, sw):
      # Phases with unequal tap counts (LaMa's k=3, s=2: the single phase convolution
      # does 16/9 of the work, measured fastest there) or one tap per phase (k = s: the
      # phase convolution is one plain product).
      y = _conv_transpose_phases(x, kernel, (sh, sw), (ph, pw), out_hw)
    elif isinstance(n, int) and 8 * n * h * w <= x.shape[-1]:
      # Very few input pixels for the channels (RFR-Net's 4x4 and 8x8 maps with 768-1024
      # channels at 64 px): per-tap products, 1.2-1.8x faster than per-phase convolutions.
      y = _conv_transpose_taps(x, kernel, (sh, sw), (ph, pw), out_hw)
    else:
      # k a multiple of s (RFR-Net's k=4, s=2): per-phase convolutions do only the
      # kernel's taps, where the single phase convolution does 9/4 of them (forward +
      # backward in RFR-Net's recurrence 1.7-3.7x faster at its 16x16-128x128 maps).
      y = _conv_transpose_subpixel(x, kernel, (sh, sw), (ph, pw), out_hw)
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
