"""Fast Fourier Convolution (FFC) blocks of LaMa, NHWC.

Port of the official `saicinpainting/training/modules/ffc.py`; each class
below states the structure it reproduces. Submodule names follow the PyTorch attribute
names (`convl2l`, `convg2g.fu.conv_layer`, `bn_l`, ...) so that the converter in
`inpaint_jax.convert.lama` is a renaming, apart from the spectral path's
`conv1` Sequential, which is split into `conv1` (1x1 conv) and `bn1` (BN).

Features move between FFC layers as a pair `(x_local, x_global)`; a missing
half (0 channels) is `None` (the official code uses the integer 0).

All BatchNorms are `inpaint_jax.models.norm.BatchNorm` (PyTorch semantics,
`batch_stats` collection), so every `__call__` takes `train` as a keyword.

The Fourier unit's transforms have two implementations (`fft_impl`, the same parameters):
`fft` (`jnp.fft`, the default for training and JAX inference) and `matmul`, the same real
DFT as products with fixed cosine/sine matrices of the feature map's size. `matmul` equals
`fft` to float32 noise and uses only real matrix products, so graph converters without FFTs
or complex values (ONNX: `python -m inpaint_jax.export --format onnx`) can take it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from inpaint_jax.models.layers import Conv, conv_sum
from inpaint_jax.models.norm import BatchNorm

Array = jax.Array
Pair = tuple[Array | None, Array | None]

DATA_AXIS = "data"
FFT_IMPLS = ("fft", "matmul")


def _data_parallel_size(batch: int) -> int:
  """Size of the active mesh's 'data' axis if the FFT should run per device.

  Returns 0 when FFTs can be called directly: no mesh set with
  `jax.set_mesh`, no 'data' axis, a size-1 axis, an axis that is already
  manual (we are inside a `shard_map`), or a batch that cannot be split evenly
  (e.g. `init` on one example).
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or DATA_AXIS not in mesh.axis_names:
    return 0
  size = mesh.shape[DATA_AXIS]
  if size <= 1 or DATA_AXIS in mesh.manual_axes or batch % size:
    return 0
  return size


def _per_device(fn, batch: int):
  """Runs `fn` batch-sharded under `shard_map` when a data mesh is active.

  Why: on the CPU backend, XLA can give a batch-sharded FFT operand a
  non-default layout and then fail at run time with
  `RET_CHECK ... fft_thunk.cc ... IsMonotonicWithDim0Major` (seen with jax
  0.10 on 2+ virtual CPU devices). FFTs are per example, so running them
  per device needs no communication and side-steps the bug on every backend.
  """
  if not _data_parallel_size(batch):
    return fn
  return jax.shard_map(fn, in_specs=P(DATA_AXIS), out_specs=P(DATA_AXIS))


def rfft2(x: Array) -> Array:
  """Ortho real FFT over H, W: (N, H, W, C) float -> (N, H, W//2+1, C) complex64.

  Always computed in float32 (XLA's CPU RFFT rejects bf16/fp16 anyway).
  """
  fn = lambda a: jnp.fft.rfft2(a, axes=(1, 2), norm="ortho")
  return _per_device(fn, x.shape[0])(x.astype(jnp.float32))


def irfft2(z: Array, hw: tuple[int, int]) -> Array:
  """Inverse of `rfft2`: (N, H, W//2+1, C) complex -> (N, H, W, C) float32."""
  fn = lambda a: jnp.fft.irfft2(a, s=hw, axes=(1, 2), norm="ortho")
  return _per_device(fn, z.shape[0])(z.astype(jnp.complex64))


def check_fft_impl(fft_impl: str) -> None:
  """Raises ValueError naming the config field unless `fft_impl` is one of FFT_IMPLS."""
  if fft_impl not in FFT_IMPLS:
    raise ValueError(f"config field generator.fft_impl={fft_impl!r} is not accepted; "
                     f"accepted: {', '.join(FFT_IMPLS)}")


def _cos_sin(n_out: int, n_in: int, n: int) -> tuple[np.ndarray, np.ndarray]:
  """cos and sin of 2 pi a b / n for a < n_out, b < n_in, float64 (the product reduced mod n
  first, so that the angles are exact)."""
  ab = (np.arange(n_out)[:, None] * np.arange(n_in)[None, :]) % n
  angle = 2.0 * np.pi * ab / n
  return np.cos(angle), np.sin(angle)


def _einsum(spec: str, a: Array, m: np.ndarray) -> Array:
  return jnp.einsum(spec, a, jnp.asarray(m, jnp.float32), precision=jax.lax.Precision.HIGHEST)


def rfft2_matmul(x: Array) -> tuple[Array, Array]:
  """`rfft2` as real matrix products: (N, H, W, C) -> (real, imag), each (N, H, W//2+1, C).

  Z[k, l] = (H W)^-1/2 sum_{h, w} x[h, w] exp(-2 pi i (k h / H + l w / W)): the W axis with
  (W, W//2+1) cosine/sine matrices, then the H axis with (H, H) ones, in float32.
  """
  _, h, w, _ = x.shape
  wf = w // 2 + 1
  x = x.astype(jnp.float32)
  cw, sw = _cos_sin(w, wf, w)                      # (W, Wf): [w, l]
  ch, sh = _cos_sin(h, h, h)                       # (H, H): [k, h], symmetric
  scale = 1.0 / np.sqrt(h * w)
  a = _einsum("nhwc,wl->nhlc", x, cw * scale)      # Re of the W transform
  b = _einsum("nhwc,wl->nhlc", x, -sw * scale)     # Im of the W transform
  re = _einsum("nhlc,kh->nklc", a, ch) + _einsum("nhlc,kh->nklc", b, sh)
  im = _einsum("nhlc,kh->nklc", b, ch) - _einsum("nhlc,kh->nklc", a, sh)
  return re, im


def irfft2_matmul(re: Array, im: Array, hw: tuple[int, int]) -> Array:
  """`irfft2` as real matrix products: (N, H, W//2+1, C) parts -> (N, H, W, C) float32.

  The inverse DFT over H, then the real inverse over W: bin l counts twice except the DC
  bin and (even W) the Nyquist bin, whose imaginary parts drop out, as in `jnp.fft.irfft2`.
  """
  h, w = hw
  wf = w // 2 + 1
  if re.shape[1:3] != (h, wf):
    raise ValueError(f"irfft2_matmul: expected (N, {h}, {wf}, C) for {h}x{w}, got {re.shape}")
  re, im = re.astype(jnp.float32), im.astype(jnp.float32)
  ch, sh = _cos_sin(h, h, h)                       # [h, k]
  yr = _einsum("nklc,hk->nhlc", re, ch) - _einsum("nklc,hk->nhlc", im, sh)
  yi = _einsum("nklc,hk->nhlc", im, ch) + _einsum("nklc,hk->nhlc", re, sh)
  cw, sw = _cos_sin(wf, w, w)                      # (Wf, W): [l, w]
  weight = np.full((wf, 1), 2.0)
  weight[0] = 1.0
  if w % 2 == 0:
    weight[-1] = 1.0
  scale = weight / np.sqrt(h * w)
  return _einsum("nhlc,lw->nhwc", yr, cw * scale) - _einsum("nhlc,lw->nhwc", yi, sw * scale)


class FourierUnit(nn.Module):
  """LaMa's Fourier unit: a 1x1 conv + BN + ReLU in the frequency domain.

  rfft2 (ortho) over (H, W), the real and imaginary parts interleaved into
  2C channels (channel 2k = Re_k, 2k+1 = Im_k, the order of the PyTorch
  `conv_layer` weight), Conv1x1(2C -> 2F, no bias), BN(2F), ReLU, then back to
  complex and irfft2 to (H, W).

  The FFTs always run in float32; the output is cast back to the input dtype.
  Only the FFTs go through `shard_map` under a data mesh, the conv and BN stay
  outside it so BN statistics remain global under `jit`.

  Attributes:
    features: F, the output channels.
    dtype: computation dtype of the spectral conv / BN (None: float32 here,
      because the spectrum is float32).
    use_bias: bias on the spectral conv (LaMa: none).
    fft_impl: `fft` (jnp.fft) or `matmul` (`rfft2_matmul` / `irfft2_matmul`, real
      matrix products at this H, W; no FFT or complex op in the graph).
  """

  features: int
  dtype: Any = None
  use_bias: bool = False
  fft_impl: str = "fft"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """(N, H, W, C) -> (N, H, W, features), in x's dtype."""
    check_fft_impl(self.fft_impl)
    n, h, w, c = x.shape
    if self.fft_impl == "matmul":
      re, im = rfft2_matmul(x)
    else:
      z = rfft2(x)
      re, im = z.real, z.imag
    wf = re.shape[2]
    f = jnp.stack([re, im], axis=-1).reshape(n, h, wf, 2 * c)
    f = Conv(2 * self.features, 1, use_bias=self.use_bias, dtype=self.dtype,
             name="conv_layer")(f)
    f = BatchNorm(dtype=self.dtype, name="bn")(f, train=train)
    f = nn.relu(f).astype(jnp.float32).reshape(n, h, wf, self.features, 2)
    if self.fft_impl == "matmul":
      y = irfft2_matmul(f[..., 0], f[..., 1], (h, w))
    else:
      y = irfft2(jax.lax.complex(f[..., 0], f[..., 1]), (h, w))
    return y.astype(x.dtype)


class SpectralTransform(nn.Module):
  """The global-to-global path of an FFC (`convg2g`).

  y = conv2(t + fu(t) [+ lfu term]), t = ReLU(BN(conv1(x))); conv1 maps C_in
  to F/2 and conv2 maps F/2 to F (1x1, no bias). No norm/activation at the end.

  Attributes:
    features: F, the output channels.
    stride: 1, or 2 for an AvgPool 2x2 first.
    enable_lfu: add the local Fourier unit term (square maps with an even
      side, and F/2 divisible by 4).
    dtype: computation dtype.
    use_bias: bias on the 1x1 convs and the spectral conv (LaMa: none).
    fft_impl: the Fourier units' transforms (see `FourierUnit`).
  """

  features: int
  stride: int = 1
  enable_lfu: bool = False
  dtype: Any = None
  use_bias: bool = False
  fft_impl: str = "fft"

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """(N, H, W, C_in) -> (N, H/stride, W/stride, features)."""
    if self.stride == 2:
      x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    elif self.stride != 1:
      raise ValueError(f"SpectralTransform stride must be 1 or 2, got {self.stride}")
    hidden = self.features // 2
    x = Conv(hidden, 1, use_bias=self.use_bias, dtype=self.dtype, name="conv1")(x)
    x = nn.relu(BatchNorm(dtype=self.dtype, name="bn1")(x, train=train))
    out = FourierUnit(hidden, dtype=self.dtype, use_bias=self.use_bias,
                      fft_impl=self.fft_impl, name="fu")(x, train=train)
    y = x + out
    if self.enable_lfu:
      y = y + self._lfu(x, train)
    return Conv(self.features, 1, use_bias=self.use_bias, dtype=self.dtype, name="conv2")(y)

  def _lfu(self, x: Array, train: bool) -> Array:
    """Local Fourier unit: quadrants of the first C/4 channels, tiled back."""
    n, h, w, c = x.shape
    if h != w or h % 2:
      raise ValueError(f"enable_lfu needs a square feature map with an even side, got {h}x{w}")
    if c % 4:
      raise ValueError(f"enable_lfu needs the hidden width divisible by 4, got {c}")
    s = h // 2
    xs = x[..., : c // 4]
    # Split H then W and stack on channels: order TL, BL, TR, BR as in PyTorch.
    xs = jnp.concatenate([xs[:, :s], xs[:, s:]], axis=-1)
    xs = jnp.concatenate([xs[:, :, :s], xs[:, :, s:]], axis=-1)
    xs = FourierUnit(c, dtype=self.dtype, fft_impl=self.fft_impl, name="lfu")(xs, train=train)
    return jnp.tile(xs, (1, 2, 2, 1))


def split_channels(channels: int, ratio: float) -> tuple[int, int]:
  """(local, global) channel counts; global = int(channels * ratio) as in LaMa."""
  g = int(channels * ratio)
  return channels - g, g


class _FFCOptions(nn.Module):
  """Keyword-only options of FFC layers, which `FFCResnetBlock` hands on to its layers.

  Attributes:
    dilation: dilation of the spatial convs.
    enable_lfu: passed to the spectral path.
    padding_type: 'reflect' or 'zeros'.
    dtype: computation dtype.
    l2g_spectral: the local-to-global path is a `SpectralTransform` (no LFU)
      instead of a spatial conv (a variant studied on top of LaMa).
    use_bias: bias on every conv (LaMa: none).
    fft_impl: the Fourier units' transforms, `fft` or `matmul` (see `FourierUnit`).
  """

  _: dataclasses.KW_ONLY
  dilation: int = 1
  enable_lfu: bool = False
  padding_type: str = "reflect"
  dtype: Any = None
  l2g_spectral: bool = False
  use_bias: bool = False
  fft_impl: str = "fft"

  def _values(self, fields_of: type[nn.Module]) -> dict[str, Any]:
    """This module's values of the fields of `fields_of` (linen's `parent`, `name` left out)."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(fields_of)
            if f.name not in ("parent", "name")}


class _FFCFields(_FFCOptions):
  """The fields of an FFC layer, shared by `FFC` and `FFC_BN_ACT` (which hands them on).

  Attributes (and the keyword-only ones of `_FFCOptions`):
    features: total output channels (local + global).
    kernel_size: spatial kernel size.
    ratio_gin: global share of the input (checked against the input pair).
    ratio_gout: global share of the output.
    stride: spatial stride.
    padding: padding of the spatial convs.
  """

  features: int
  kernel_size: int
  ratio_gin: float
  ratio_gout: float
  stride: int = 1
  padding: int = 0


class FFC(_FFCFields):
  """Fast Fourier convolution on a (local, global) pair.

  out_l = convl2l(x_l) + convg2l(x_g); out_g = convl2g(x_l) + convg2g(x_g).
  The three spatial convs have no bias (LaMa; see `use_bias`); a branch with an empty input or
  output does not exist (no params).

  Attributes: see `_FFCFields`.
  """

  @nn.compact
  def __call__(self, x: Array | Pair, *, train: bool) -> Pair:
    """x: (N,H,W,C) array (all local) or a pair; returns the output pair."""
    x_l, x_g = x if isinstance(x, tuple) else (x, None)
    in_cl = 0 if x_l is None else x_l.shape[-1]
    in_cg = 0 if x_g is None else x_g.shape[-1]
    if split_channels(in_cl + in_cg, self.ratio_gin)[1] != in_cg:
      raise ValueError(f"FFC input has {in_cl} local + {in_cg} global channels, which does not "
                       f"match ratio_gin={self.ratio_gin}")
    out_cl, out_cg = split_channels(self.features, self.ratio_gout)

    def conv_args(features):
      return dict(features=features, kernel_size=self.kernel_size, strides=self.stride,
                  padding=self.padding, padding_mode=self.padding_type,
                  kernel_dilation=self.dilation, use_bias=self.use_bias, dtype=self.dtype)

    def spatial(name, features):
      return Conv(**conv_args(features), name=name)

    def add(a, b):
      return b if a is None else (a if b is None else a + b)

    out_l = out_g = None
    if self.ratio_gout != 1 and out_cl:
      if in_cl and in_cg:
        # convl2l(x_l) + convg2l(x_g) as one convolution of [x_l, x_g] (same params).
        out_l = conv_sum([x_l, x_g], ["convl2l", "convg2l"], **conv_args(out_cl))
      elif in_cl:
        out_l = spatial("convl2l", out_cl)(x_l)
      elif in_cg:
        out_l = spatial("convg2l", out_cl)(x_g)
    if self.ratio_gout != 0:
      if in_cl and out_cg:
        if self.l2g_spectral:
          out_g = SpectralTransform(out_cg, stride=self.stride, dtype=self.dtype,
                                    use_bias=self.use_bias, fft_impl=self.fft_impl,
                                    name="convl2g")(x_l, train=train)
        else:
          out_g = spatial("convl2g", out_cg)(x_l)
      if in_cg and out_cg:
        out_g = add(out_g, SpectralTransform(out_cg, stride=self.stride,
                                             enable_lfu=self.enable_lfu, dtype=self.dtype,
                                             use_bias=self.use_bias,
                                             fft_impl=self.fft_impl,
                                             name="convg2g")(x_g, train=train))
    return out_l, out_g


class FFC_BN_ACT(_FFCFields):
  """FFC followed by BN + ReLU on each non-empty output half.

  (The class keeps the official LaMa name, which makes the weight mapping easy to
  follow.)

  Attributes: see `_FFCFields`, all handed to the FFC (the submodule `ffc`; the norms
  are `bn_l`, `bn_g`).
  """

  @nn.compact
  def __call__(self, x: Array | Pair, *, train: bool) -> Pair:
    """x: array or (local, global) pair -> (local, global) pair."""
    x_l, x_g = FFC(**self._values(_FFCFields), name="ffc")(x, train=train)
    if x_l is not None:
      x_l = nn.relu(BatchNorm(dtype=self.dtype, name="bn_l")(x_l, train=train))
    if x_g is not None:
      x_g = nn.relu(BatchNorm(dtype=self.dtype, name="bn_g")(x_g, train=train))
    return x_l, x_g


class FFCResnetBlock(_FFCOptions):
  """Two 3x3 FFC_BN_ACT layers (`conv1`, `conv2`) plus identity shortcuts.

  out_l = x_l + y_l, out_g = x_g + y_g; no activation after the add.

  Attributes (and the keyword-only ones of `_FFCOptions`, handed to both layers; the
  dilation is also their padding):
    dim: total channels (local + global), unchanged by the block.
    ratio_gin: global share of the input.
    ratio_gout: global share of the output (must give the same split).
    share_weights: one layer `conv1` (its BNs included) applied twice instead of
      `conv1` then `conv2` (a variant studied on top of LaMa).
  """

  dim: int
  ratio_gin: float = 0.75
  ratio_gout: float = 0.75
  share_weights: bool = False

  @nn.compact
  def __call__(self, x: Array | Pair, *, train: bool) -> Pair:
    """(local, global) pair -> pair of the same shapes."""
    x_l, x_g = x if isinstance(x, tuple) else (x, None)
    y = (x_l, x_g)

    def layer(name):
      return FFC_BN_ACT(self.dim, 3, self.ratio_gin, self.ratio_gout, padding=self.dilation,
                        **self._values(_FFCOptions), name=name)

    layers = [layer("conv1")] * 2 if self.share_weights else [layer("conv1"), layer("conv2")]
    for f in layers:
      y = f(y, train=train)
    y_l, y_g = y
    out_l = None if x_l is None else x_l + y_l
    out_g = None if x_g is None else x_g + y_g
    return out_l, out_g
