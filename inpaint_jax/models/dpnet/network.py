"""DPNet (Wang, Shao, Meng, Zuo, "Dual-Pyramidal Image Inpainting with Dynamic Normalization",
IEEE TCSVT 2022), NHWC: generator `dpnet` and discriminator `dpnet_patch`.

The authors released no code, so the paper's abstract and README figure fix the ideas and
we chose the rest (README section "DPNet" says which is which):

  input x_0 = cat[image * known, known]  (4 ch; known = 1 - mask)
  encoder level i = 0 .. depth-1 (stride 2 each, widths[i] channels):
    level 0: a plain stem conv (k = stem_kernel, bias) + ReLU: grouped PyConv branches
      cannot split 4 input channels, as the reference PyConvResNet also starts with a stem;
    level i >= 1: a PyConv with the (5 - i)-level pyramid (4, 3, 2 then 1 levels: kernels
      3/5/7/9 with groups 1/4/8/16, ...), no bias, then dynamic normalisation + ReLU;
    the mask is updated like partial convolution's: m_i = clip(sum of m_{i-1} over the
    level's largest kernel, stride 2, 0, 1), so the valid region grows as the receptive
    field does;
  decoder level l = depth-2 .. 0 (output at the size of encoder level l, widths[l]):
    nearest x2 upsampling, concat the skip e_l, 3x3 conv (no bias), dynamic normalisation
    with the mirrored encoder mask m_l, LeakyReLU 0.2;
    at the levels in `pam_levels` (default: H/8 and H/4) the pyramidal attention mechanism
    (PAM): DeepFill's contextual attention with queries and keys the decoder features
    (3x3 patches, keys touching an input hole masked) pastes values from two encoder levels
    at once: 2x2 patches of e_l back into this level and 4x4 patches of the finer e_{l-1}
    (stride 2) into the next level's skip, so the finer patches come directly from a learned
    layer instead of a downscaled copy. Both are added with learnt scales initialised at 0;
  output: nearest x2, concat x_0, 3x3 conv -> 3 channels (bias), sigmoid.

Dynamic normalisation = region normalisation (`region_norm.RegionNorm`: separate statistics
and affine parameters for the valid and hole regions) driven by the *updated* mask of the
level. Ablation switches (`pyconv`, `pam`, `dynamic_norm`) switch each idea off:
`pyconv=False` uses one 3x3 conv per encoder level after the 7x7 stem, which stays (and
3x3 mask updates), `pam=False` drops the attention, `dynamic_norm=False` normalises with
`static_norm`: region norm driven
by the input mask resized to each level by nearest (RN's own rule, "region") or BatchNorm
("batch").

The discriminator follows the README figure: spectral-normalised 4x4 stride-2 convs to
64 @ H/2, 128 @ H/4, 256 @ H/8, 512 @ H/16 (LeakyReLU 0.2), then one channel at H/32. It
returns the logits; the figure's sigmoid and average is `mean(sigmoid(logits))`, and the
BCE losses apply the sigmoid inside (stable) per patch score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaint_jax.models import contextual_attention as ca
from inpaint_jax.models import partial_conv
from inpaint_jax.models.fields import store_int_tuples
from inpaint_jax.models.layers import Conv
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.models.pyconv import PyConv, pyramid
from inpaint_jax.models.region_norm import RegionNorm
from inpaint_jax.models.spectral_norm import SpectralNorm
from inpaint_jax.registry import DISCRIMINATORS, GENERATORS

Array = jax.Array

STATIC_NORMS = ("region", "batch")
PAM_KEYS = ("decoder", "encoder")


def update_mask(valid: Array, kernel: int, stride: int) -> Array:
  """Partial convolution's mask update over a kernel x kernel window (zero padding k // 2).

  Args:
    valid: (N, H, W, 1), 1 = valid.
    kernel: window side (odd), the level's largest kernel.
    stride: the level's stride.

  Returns:
    (N, ceil(H / stride), ceil(W / stride), 1) in {0, 1}: 1 where the window holds a
    valid pixel (no gradient flows through it).
  """
  return partial_conv.mask_update(valid, kernel, stride, kernel // 2)[1]


def pyramid_levels(level: int) -> int:
  """Pyramid size of encoder level `level` >= 1: 4, 3, 2, then 1."""
  return max(1, 5 - level)


def upsample_nearest2x(x: Array) -> Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def max_pool(x: Array, factor: int) -> Array:
  """(N, H, W, C) -> (N, H / factor, W / factor, C), max over factor x factor cells."""
  if factor == 1:
    return x
  n, h, w, c = x.shape
  return jnp.max(x.reshape(n, h // factor, factor, w // factor, factor, c), axis=(2, 4))


@GENERATORS.register("dpnet")
class DPNet(nn.Module):
  """DPNet generator (see the module docstring).

  Attributes:
    widths: encoder channels per level; their number is the depth (H and W must be
      multiples of 2**depth).
    stem_kernel: kernel of the level-0 conv (odd).
    pyconv: PyConv encoder (False: one 3x3 conv per level after the stem; level 0 keeps
      its `stem_kernel` conv).
    pam: pyramidal attention in the decoder.
    dynamic_norm: region normalisation driven by the updated masks.
    static_norm: the norm when dynamic_norm is False: region | batch.
    pam_levels: decoder levels with PAM (level l works at H / 2**(l+1)).
    pam_keys: decoder (keys = the queries' own map, as DeepFill) | encoder (keys = e_l).
    softmax_scale: contextual attention's softmax scale.
    fuse: contextual attention's fuse step.
    c_img: image channels.
    dtype: computation dtype (None: float32); attention and norms run in float32.
  """

  widths: Sequence[int] = (64, 128, 256, 512, 512, 512, 512)
  stem_kernel: int = 7
  pyconv: bool = True
  pam: bool = True
  dynamic_norm: bool = True
  static_norm: str = "region"
  pam_levels: Sequence[int] = (2, 1)
  pam_keys: str = "decoder"
  softmax_scale: float = 10.0
  fuse: bool = True
  c_img: int = 3
  dtype: Any = None

  def __post_init__(self):
    store_int_tuples(self, "widths", "pam_levels")
    super().__post_init__()

  @property
  def depth(self) -> int:
    return len(self.widths)

  def _validate(self, image: Array, mask: Array) -> None:
    if self.depth < 2:
      raise ValueError(f"DPNet: widths needs at least 2 levels, got {list(self.widths)}")
    if self.static_norm not in STATIC_NORMS:
      raise ValueError(f"DPNet: static_norm must be one of {', '.join(STATIC_NORMS)}, got "
                       f"{self.static_norm!r}")
    if self.pam_keys not in PAM_KEYS:
      raise ValueError(f"DPNet: pam_keys must be one of {', '.join(PAM_KEYS)}, got "
                       f"{self.pam_keys!r}")
    if self.pam and any(not 1 <= lv <= self.depth - 2 for lv in self.pam_levels):
      raise ValueError(f"DPNet: pam_levels must lie in [1, {self.depth - 2}] for "
                       f"{self.depth} levels, got {list(self.pam_levels)}")
    if image.ndim != 4 or image.shape[-1] != self.c_img or mask.shape != image.shape[:3] + (1,):
      raise ValueError(f"DPNet expects image (N,H,W,{self.c_img}) and mask (N,H,W,1), got "
                       f"{image.shape} and {mask.shape}")
    factor = 2 ** self.depth
    h, w = image.shape[1:3]
    if h % factor or w % factor:
      raise ValueError(f"DPNet with {self.depth} levels needs H and W to be multiples of "
                       f"{factor} (2**levels), got {h}x{w}")

  def _norm(self, x: Array, valid_updated: Array, known: Array, name: str,
            train: bool) -> Array:
    if self.dynamic_norm:
      return RegionNorm(dtype=self.dtype, name=name)(x, valid_updated)
    if self.static_norm == "region":
      factor = known.shape[1] // x.shape[1]
      return RegionNorm(dtype=self.dtype, name=name)(x, ca.downscale(known, factor))
    return BatchNorm(dtype=self.dtype, name=name)(x, train=train)

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Any]:
    """Inpaints a batch.

    Args:
      image: (N, H, W, c_img) in [0, 1] (hole content ignored).
      mask: (N, H, W, 1), 1 = hole.
      train: BatchNorm mode (only used with `dynamic_norm=False, static_norm="batch"`).

    Returns:
      {"pred": (N, H, W, c_img) float32 in (0, 1), not composited}. With
      `mutable=['intermediates']` the updated masks `mask_i` (1 = valid) and the PAM
      outputs are sown.
    """
    self._validate(image, mask)
    known = 1.0 - mask.astype(jnp.float32)
    x0 = jnp.concatenate([image.astype(jnp.float32) * known, known], axis=-1)
    dt = self.dtype or jnp.float32

    # --- encoder ---------------------------------------------------------------------
    feats, masks = [], []
    x, m = x0.astype(dt), known
    for i, c in enumerate(self.widths):
      if i == 0:
        k = self.stem_kernel
        x = Conv(c, k, strides=2, padding=k // 2, dtype=self.dtype, name="enc_0")(x)
        m = update_mask(m, k, 2)
        x = nn.relu(x)
      else:
        if self.pyconv:
          kernels, groups, splits = pyramid(pyramid_levels(i), c)
          conv = PyConv(c, kernels, groups, splits, strides=2, dtype=self.dtype, name=f"enc_{i}")
          k = max(kernels)
        else:
          conv = Conv(c, 3, strides=2, padding=1, use_bias=False, dtype=self.dtype,
                      name=f"enc_{i}")
          k = 3
        x = conv(x)
        m = update_mask(m, k, 2)
        x = nn.relu(self._norm(x, m, known, f"enc_{i}_norm", train))
      self.sow("intermediates", f"mask_{i}", m)
      feats.append(x)
      masks.append(m)

    # --- decoder ---------------------------------------------------------------------
    fine: dict[int, Array] = {}  # level -> attended finer features for that level's skip
    x = feats[-1]
    for lv in range(self.depth - 2, -1, -1):
      skip = feats[lv]
      if lv in fine:
        skip = skip + fine.pop(lv).astype(skip.dtype)
      x = jnp.concatenate([upsample_nearest2x(x), skip], axis=-1)
      x = Conv(self.widths[lv], 3, padding=1, use_bias=False, dtype=self.dtype,
               name=f"dec_{lv}")(x)
      x = nn.leaky_relu(self._norm(x, masks[lv], known, f"dec_{lv}_norm", train), 0.2)
      if self.pam and lv in self.pam_levels:
        x, fine[lv - 1] = self._pam(x, feats, mask, lv)
    x = jnp.concatenate([upsample_nearest2x(x), x0.astype(dt)], axis=-1)
    x = Conv(self.c_img, 3, padding=1, dtype=self.dtype, name="out")(x)
    return {"pred": jax.nn.sigmoid(x.astype(jnp.float32))}

  def _pam(self, x: Array, feats: list[Array], mask: Array, lv: int) -> tuple[Array, Array]:
    """PAM at decoder level lv: (new x, attended features for the skip of level lv - 1)."""
    # A key is usable only if no pixel of its cell was a hole in the input.
    hole = max_pool(mask.astype(jnp.float32), 2 ** (lv + 1))
    keys = x if self.pam_keys == "decoder" else feats[lv]
    same, finer = ca.pyramidal_attention(
        x, keys, hole, [(feats[lv], 1), (feats[lv - 1], 2)],
        softmax_scale=self.softmax_scale, fuse=self.fuse)
    self.sow("intermediates", f"pam_{lv}", same)
    g_same = self.param(f"pam_{lv}_scale", nn.initializers.zeros, (), jnp.float32)
    g_fine = self.param(f"pam_{lv}_fine_scale", nn.initializers.zeros, (), jnp.float32)
    x = (x.astype(jnp.float32) + g_same * same).astype(x.dtype)
    return x, g_fine * finer


@DISCRIMINATORS.register("dpnet_patch")
class DPNetPatchDiscriminator(nn.Module):
  """DPNet's SN-patch discriminator (the README figure).

  Attributes:
    input_nc: input channels (image + mask = 4 with `losses.d_input_mask=True`).
    widths: channels of the stride-2 LeakyReLU layers (64, 128, 256, 512).
    kernel_size: conv kernel (4, zero padding 1: exact halving).
    dtype: computation dtype.
  """

  input_nc: int = 4
  widths: Sequence[int] = (64, 128, 256, 512)
  kernel_size: int = 4
  dtype: Any = None

  def __post_init__(self):
    store_int_tuples(self, "widths")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> tuple[Array, list[Array]]:
    """x (N, H, W, input_nc) -> (logits (N, H / 2**(L+1), W / 2**(L+1), 1), features).

    train: run the spectral norm's power iteration (pass `mutable=['spectral']`).
    """
    if x.shape[-1] != self.input_nc:
      raise ValueError(f"DPNetPatchDiscriminator expects {self.input_nc} channels (image + "
                       f"mask: set losses.d_input_mask=True), got {x.shape}")
    k, pad = self.kernel_size, (self.kernel_size - 1) // 2
    feats = []
    for i, c in enumerate(self.widths):
      conv = Conv(c, k, strides=2, padding=pad, dtype=self.dtype)
      x = nn.leaky_relu(SpectralNorm(conv, name=f"conv_{i}")(x, update_stats=train), 0.2)
      feats.append(x)
    conv = Conv(1, k, strides=2, padding=pad, dtype=self.dtype)
    logits = SpectralNorm(conv, name=f"conv_{len(self.widths)}")(x, update_stats=train)
    return logits.astype(jnp.float32), [f.astype(jnp.float32) for f in feats]


def patch_probability(logits: Array) -> Array:
  """The figure's score: mean over patches of sigmoid(logits), (N, h, w, 1) -> (N,)."""
  return jnp.mean(jax.nn.sigmoid(logits), axis=(1, 2, 3))
