"""DGFNet generator (Wu Yang and Wuzhen Shi, "Detail Generation and Fusion Networks
for Image Inpainting"), NHWC.

Three parts, trained together:

* **coarse branch**: a registered generator, RFR-Net (`rfr`) by default, run on the
  image and mask as they are and built with `return_features=True`: its `pred` is the
  coarse result I_c, and its `features` `h8`, `h4`, `h2`, `h1` (the coarse result's
  feature maps at H/8, H/4, H/2 and H) are the fusion decoder's skips.
* **texture branch**: an encoder-decoder on the texture map of the masked image.
  The texture input is `T_in = (M - RTV(M, mask)) * known`, M = image * known, with
  the mask-aware RTV (`inpaint_jax.rtv`); the branch sees cat(T_in, mask) and
  predicts the texture map T of the whole image (linear output, `texture`). Its
  target is the texture of the ground truth, `image - RTV(image)`, returned as
  `texture_target` in train mode (it depends on the image only).
* **fusion network**: a feature encoder per stream (the paper: the coarse result and
  the generated texture "are firstly coded as features F_c and F_t by several
  convolution layers"), four cascaded difference perception fusion modules (DPFM),
  every convolution stride 2, then a decoder back to full resolution with skips
  from the coarse branch at each scale. DPFM, with our reading of Eq. (4):

      W_c, W_t = split(sigmoid(BN(conv(cat(F_c, F_t)))))
      F_c' = BN(W_c * LReLU(conv(F_c)))
      F_t' = BN(W_t * LReLU(conv(F_t)))
      the next DPFM reads F_c', F_t'; after the last one, cat(F_c', F_t').

  The paper's Eq. (4) prints cat(F_c, F_c); we read it as cat(F_c', F_t') (the
  duplicate would drop the texture stream the module exists to fuse), formed after the
  last DPFM only.

Layout (widths for the defaults; all convs 3x3, padding 1, no bias before a BN):

  texture branch (`tex_widths` = 64, 128, 256, 512):
    stem   conv s1 4 -> 64, LReLU(0.2)                                   H
    enc_i  conv s2 -> tex_widths[i], BN, LReLU(0.2)              H/2 .. H/16
    mid_j  residual block: conv dil 2, BN, LReLU, conv dil 2, BN, + input   H/16
    dec_i  nearest x2, cat(skip), conv s1 -> width of the skip, BN, LReLU   H/8 .. H
    head   conv 3x3 -> 3 (bias, linear)                                  H
  fusion network (`encoder_widths` = 32, 32; `fuse_widths` = 64, 128, 256, 256):
    C = mask * I_c + (1 - mask) * M              (the coarse composite)
    T' = mask * T + (1 - mask) * T_in            (the texture composite)
    encoder_c, encoder_t: per layer conv s1, BN, LReLU(0.2) -> F_c^0, F_t^0   H
      (`feature_encoders=False`: F_c^0 = C and F_t^0 = T', the 3-channel images)
    dpfm_k, k = 1..4: F^k at H / 2**k, fuse_widths[k-1] channels per stream
    x = cat(F_c^4, F_t^4)                        (H/16)
    up_3 .. up_0: nearest x2 of x, cat(the coarse branch's feature at that scale:
      h8, h4, h2, h1), conv s1, BN, LReLU(0.2) -> 256, 128, 64, 32
      (fuse_widths[2], [1], [0], fuse_out_width)
    head  conv 3x3 -> 3 (bias, linear) = `pred`

Variants (the paper's Table 2 ablation):
* `fusion="dpfm"` (default): the full model.
* `fusion="concat"`: no DPFM: the gate is dropped (W_c = W_t = 1), each stream is
  `BN(LReLU(conv(F)))` and the two are concatenated.
* `texture_branch=False`: the baseline: no RTV, no texture branch and no texture
  stream; the fusion network has only the coarse stream.

H and W must be multiples of 16 (RFR-Net's own rule; the four stride-2 DPFMs need
it too). The mask is the project's (1 = hole); the coarse generator gets the same
image and mask and converts them itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from inpaint_jax.models import factory
from inpaint_jax.models.dgfnet import rtv as rtv_lib
from inpaint_jax.models.fields import store_int_tuples
from inpaint_jax.models.layers import Conv
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.registry import GENERATORS

Array = jax.Array

FUSIONS = ("dpfm", "concat")
SLOPE = 0.2  # LeakyReLU slope of every texture / fusion layer
SIZE_FACTOR = 16
# The coarse branch's feature maps read by the fusion decoder, coarsest first (H/8 .. H).
SKIP_KEYS = ("h8", "h4", "h2", "h1")


def _freeze(value: Any) -> Any:
  """Mappings -> FrozenDict and lists -> tuples, so the module stays hashable for jit."""
  if isinstance(value, Mapping) or hasattr(value, "to_dict"):
    value = value.to_dict() if hasattr(value, "to_dict") else value
    return FrozenDict({str(k): _freeze(v) for k, v in value.items()})
  if isinstance(value, list | tuple):
    return tuple(_freeze(v) for v in value)
  return value


def _thaw(value: Any) -> Any:
  if isinstance(value, Mapping):
    return {k: _thaw(v) for k, v in value.items()}
  return value


def upsample_nearest2x(x: Array) -> Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConvBNAct(nn.Module):
  """conv 3x3 (no bias) -> BN -> LeakyReLU(0.2)."""

  features: int
  strides: int = 1
  dilation: int = 1
  act: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = Conv(self.features, 3, strides=self.strides, padding=self.dilation,
             kernel_dilation=self.dilation, use_bias=False, dtype=self.dtype, name="conv")(x)
    x = BatchNorm(dtype=self.dtype, name="bn")(x, train=train)
    return nn.leaky_relu(x, SLOPE) if self.act else x


class ResBlock(nn.Module):
  """Residual block of two dilated 3x3 convs with BN (texture branch bottleneck)."""

  dilation: int = 2
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    c = x.shape[-1]
    y = ConvBNAct(c, dilation=self.dilation, dtype=self.dtype, name="c1")(x, train=train)
    y = ConvBNAct(c, dilation=self.dilation, act=False, dtype=self.dtype, name="c2")(
        y, train=train)
    return x + y


class TextureBranch(nn.Module):
  """U-Net on cat(texture input, mask) -> the texture map (N, H, W, 3), linear.

  Attributes:
    widths: encoder widths at H/2, H/4, ...; the stem has widths[0] channels.
    n_res: residual blocks at the coarsest level.
    dtype: computation dtype.
  """

  widths: Sequence[int] = (64, 128, 256, 512)
  n_res: int = 1
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = Conv(self.widths[0], 3, padding=1, dtype=self.dtype, name="stem")(x)
    x = nn.leaky_relu(x, SLOPE)
    skips = [x]
    for i, c in enumerate(self.widths):
      x = ConvBNAct(c, strides=2, dtype=self.dtype, name=f"enc_{i}")(x, train=train)
      skips.append(x)
    for j in range(self.n_res):
      x = ResBlock(dtype=self.dtype, name=f"mid_{j}")(x, train=train)
    for i in reversed(range(len(self.widths))):
      skip = skips[i]
      x = jnp.concatenate([upsample_nearest2x(x), skip], axis=-1)
      x = ConvBNAct(skip.shape[-1], dtype=self.dtype, name=f"dec_{i}")(x, train=train)
    return Conv(3, 3, padding=1, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class StreamEncoder(nn.Module):
  """A stream's feature encoder before the DPFMs: per width, conv 3x3 s1 + BN + LReLU(0.2).

  Attributes:
    widths: output channels of each layer (full resolution).
    dtype: computation dtype.
  """

  widths: Sequence[int] = (32, 32)
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """(N, H, W, C) -> (N, H, W, widths[-1])."""
    for i, c in enumerate(self.widths):
      x = ConvBNAct(c, dtype=self.dtype, name=f"layer_{i}")(x, train=train)
    return x


class DPFM(nn.Module):
  """Difference perception fusion module (stride 2), or its ablations.

  Attributes:
    features: output channels per stream.
    gated: the DPFM gate (False: `concat`, W_c = W_t = 1).
    dtype: computation dtype.
  """

  features: int
  gated: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, f_c: Array, f_t: Array | None, *, train: bool
               ) -> tuple[Array, Array | None]:
    """(N, H, W, Cc), (N, H, W, Ct) or None -> the two streams at (N, H/2, W/2, features)."""
    c = self.features

    def stream(f, name):
      y = Conv(c, 3, strides=2, padding=1, use_bias=False, dtype=self.dtype, name=name)(f)
      return nn.leaky_relu(y, SLOPE)

    y_c = stream(f_c, "conv_c")
    if f_t is None:
      return BatchNorm(dtype=self.dtype, name="bn_c")(y_c, train=train), None
    y_t = stream(f_t, "conv_t")
    if self.gated:
      g = Conv(2 * c, 3, strides=2, padding=1, use_bias=False, dtype=self.dtype,
               name="conv_w")(jnp.concatenate([f_c, f_t], axis=-1))
      g = jax.nn.sigmoid(BatchNorm(dtype=self.dtype, name="bn_w")(g, train=train))
      w_c, w_t = jnp.split(g, 2, axis=-1)
      y_c, y_t = w_c * y_c, w_t * y_t
    return (BatchNorm(dtype=self.dtype, name="bn_c")(y_c, train=train),
            BatchNorm(dtype=self.dtype, name="bn_t")(y_t, train=train))


@GENERATORS.register("dgfnet")
class DGFNet(nn.Module):
  """DGFNet: coarse branch, RTV texture branch and DPFM fusion.

  Attributes:
    coarse: the coarse branch's generator config: `name` (a registered generator,
      default `rfr`) and its fields (e.g. `n_rec`, `rec_ksize`). It is built with
      `return_features=True` and must then return `features` with SKIP_KEYS.
    texture_branch: False = the baseline without RTV, texture branch and DPFM.
    fusion: dpfm (the paper) | concat (the no-DPFM ablation).
    feature_encoders: encode each stream (coarse composite, texture composite) with a
      `StreamEncoder` before DPFM-1, as the paper describes; False: DPFM-1 reads the
      3-channel composites directly (the form before the encoders were added).
    encoder_widths: the encoders' layer widths (both streams; full resolution).
    tex_widths: texture branch encoder widths (H/2 ... H/16).
    tex_res_blocks: residual blocks at the texture branch's coarsest level.
    fuse_widths: per-stream widths of the four DPFMs (H/2 ... H/16).
    fuse_out_width: width of the fusion decoder's full-resolution layer.
    rtv_lam, rtv_sigma, rtv_sharpness, rtv_iters: RTV parameters (the reference's
      defaults 0.01, 3, 0.02, 4).
    rtv_cg_tol, rtv_cg_max_iter: the RTV solver's relative residual and step bound.
    dtype: computation dtype (None: float32); RTV always runs in float32 and the
      outputs are float32.
  """

  coarse: Any = None
  texture_branch: bool = True
  fusion: str = "dpfm"
  feature_encoders: bool = True
  encoder_widths: Sequence[int] = (32, 32)
  tex_widths: Sequence[int] = (64, 128, 256, 512)
  tex_res_blocks: int = 1
  fuse_widths: Sequence[int] = (64, 128, 256, 256)
  fuse_out_width: int = 32
  rtv_lam: float = 0.01
  rtv_sigma: float = 3.0
  rtv_sharpness: float = 0.02
  rtv_iters: int = 4
  rtv_cg_tol: float = 1e-3
  rtv_cg_max_iter: int = 300
  dtype: Any = None

  def __post_init__(self):
    object.__setattr__(self, "coarse", _freeze(self.coarse or {"name": "rfr"}))
    store_int_tuples(self, "tex_widths", "fuse_widths", "encoder_widths")
    super().__post_init__()

  def setup(self):
    if self.fusion not in FUSIONS:
      raise ValueError(f"config field generator.fusion={self.fusion!r} is not accepted; "
                       f"accepted: {', '.join(FUSIONS)}")
    if len(self.fuse_widths) != 4:
      raise ValueError(f"config field generator.fuse_widths needs 4 widths (four DPFMs), "
                       f"got {self.fuse_widths}")
    if len(self.tex_widths) != 4:
      raise ValueError(f"config field generator.tex_widths needs 4 widths (H/2 ... H/16), "
                       f"got {self.tex_widths}")
    if self.feature_encoders and (not self.encoder_widths
                                  or min(self.encoder_widths) < 1):
      raise ValueError("config field generator.encoder_widths needs at least one positive "
                       f"width with feature_encoders=True, got {self.encoder_widths}")
    coarse = _thaw(self.coarse)
    if coarse.get("name") == "dgfnet":
      raise ValueError("config field generator.coarse.name: the coarse branch cannot be dgfnet")
    # The fusion decoder's skips are the coarse branch's feature maps.
    coarse.setdefault("return_features", True)
    self.coarse_net = factory.build_module(GENERATORS, coarse, "generator.coarse", self.dtype)
    if self.texture_branch:
      self.texture_net = TextureBranch(self.tex_widths, self.tex_res_blocks, dtype=self.dtype)
    if self.feature_encoders:
      self.encoder_c = StreamEncoder(self.encoder_widths, dtype=self.dtype)
      if self.texture_branch:
        self.encoder_t = StreamEncoder(self.encoder_widths, dtype=self.dtype)
    gated = self.fusion == "dpfm" and self.texture_branch
    self.dpfms = [DPFM(c, gated=gated, dtype=self.dtype, name=f"dpfm_{k + 1}")
                  for k, c in enumerate(self.fuse_widths)]
    # Execution order up_3 (to H/8), up_2, up_1, up_0 (to H).
    ups = list(reversed(self.fuse_widths[:3])) + [self.fuse_out_width]
    self.ups = [ConvBNAct(c, dtype=self.dtype, name=f"up_{3 - i}") for i, c in enumerate(ups)]
    self.head = Conv(3, 3, padding=1, dtype=self.dtype)

  def rtv(self, image: Array, mask: Array | None = None) -> Array:
    """Texture map of `image` (N, H, W, 3), float32, no gradient."""
    texture, _ = rtv_lib.rtv(jax.lax.stop_gradient(image.astype(jnp.float32)), self.rtv_lam,
                             self.rtv_sigma, self.rtv_sharpness, self.rtv_iters, mask,
                             cg_tol=self.rtv_cg_tol, cg_max_iter=self.rtv_cg_max_iter)
    return jax.lax.stop_gradient(texture)

  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    """Inpaints a batch.

    Args:
      image: (N, H, W, 3) in [0, 1] (the hole content is ignored), H, W multiples of 16.
      mask: (N, H, W, 1), 1 = hole.
      train: BatchNorm in train mode (pass `mutable=['batch_stats']`) or eval mode.

    Returns:
      {"pred": (N, H, W, 3) the fusion network's result,
       "coarse": (N, H, W, 3) the coarse branch's result,
       "texture": (N, H, W, 3) the predicted texture map (not with texture_branch=False),
       "texture_input": the masked texture map the branch read (idem),
       "texture_target": image - RTV(image) (train mode and texture branch only)},
      all float32. Nothing is composited.

    Raises:
      ValueError: bad shapes or H, W not multiples of 16.
    """
    if image.ndim != 4 or image.shape[-1] != 3 or mask.shape != image.shape[:3] + (1,):
      raise ValueError(f"DGFNet expects image (N,H,W,3) and mask (N,H,W,1), got "
                       f"{image.shape} and {mask.shape}")
    h, w = image.shape[1:3]
    if h % SIZE_FACTOR or w % SIZE_FACTOR:
      raise ValueError(f"DGFNet: H and W must be multiples of {SIZE_FACTOR}, got {h}x{w}")
    mask = mask.astype(jnp.float32)
    known = 1.0 - mask
    image = image.astype(jnp.float32)
    masked = image * known

    coarse_out = self.coarse_net(image, mask, train=train)
    features = coarse_out.get("features") or {}
    missing = [k for k in SKIP_KEYS if k not in features]
    if missing:
      raise ValueError(f"config field generator.coarse.name={self.coarse['name']!r}: the "
                       f"coarse generator returns no features {missing} (DGFNet's skips need "
                       f"{', '.join(SKIP_KEYS)} from `return_features=True`)")
    coarse = coarse_out["pred"].astype(jnp.float32)
    out = {"coarse": coarse}
    f_c = mask * coarse + known * masked
    f_t = None
    if self.texture_branch:
      t_in = self.rtv(masked, mask) * known
      x = jnp.concatenate([t_in, mask], axis=-1)
      texture = self.texture_net(x.astype(self.dtype or jnp.float32), train=train)
      out["texture"] = texture
      out["texture_input"] = t_in
      if train:
        out["texture_target"] = self.rtv(image)
      f_t = mask * texture + known * t_in

    cast = (lambda a: a) if self.dtype is None else (lambda a: a.astype(self.dtype))
    f_c, f_t = cast(f_c), None if f_t is None else cast(f_t)
    if self.feature_encoders:
      f_c = self.encoder_c(f_c, train=train)
      if f_t is not None:
        f_t = self.encoder_t(f_t, train=train)
    for dpfm in self.dpfms:
      f_c, f_t = dpfm(f_c, f_t, train=train)
    # Eq. (4) read as cat(F_c', F_t'), after the last DPFM only.
    x = f_c if f_t is None else jnp.concatenate([f_c, f_t], axis=-1)
    for key, up in zip(SKIP_KEYS, self.ups, strict=True):
      skip = features[key]
      x = upsample_nearest2x(x)
      if skip.shape[1:3] != x.shape[1:3]:
        raise ValueError(f"DGFNet: coarse feature {key!r} is {skip.shape[1:3]}, the fusion "
                         f"decoder is at {x.shape[1:3]}")
      x = up(jnp.concatenate([x, skip.astype(x.dtype)], axis=-1), train=train)
    out["pred"] = self.head(x).astype(jnp.float32)
    return out
