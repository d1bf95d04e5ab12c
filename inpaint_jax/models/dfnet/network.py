"""DFNet generator (Hong et al., "Deep Fusion Network for Image Completion", ACM MM 2019), NHWC.

A U-Net with `depth = len(en_ksize)` levels whose finest decoder levels end in
*fusion blocks*: each predicts an RGB image and an alpha map at its scale and blends
the prediction with the known pixels, so every scale gets its own reconstruction
target. Structure (levels counted from the finest, as the official state_dict does):

  input x_0 = cat[img_miss, known]  (4 ch; img_miss = image * known, known = 1 - mask)
  en_0:         conv k=en_ksize[0] s2 -> c_base        (no norm, no activation)
  en_i, i >= 1: conv k=en_ksize[i] s2 -> min(2 c_in, c_max), norm, act_en (ReLU)
  de_l, l = depth-1 .. 0:  up x2 (nearest, or a k2 s2 ConvTranspose in `deconv` mode)
      of the previous output, concat [up, skip_l] with skip_l = the *input* of en_l
      (x_0 for l = 0), conv k=de_ksize[depth-1-l] s1 -> channels of skip_l, norm,
      act_de (LeakyReLU 0.2). So de_0 (full resolution) has only 4 channels.
  fuse_l on de_l for l in blend_layers:
      raw    = sigmoid(conv1x1(feat) -> 3)
      known  = bilinear resize of img_miss to the level (half-pixel centres, no
               anti-aliasing)
      alpha  = sigmoid(conv1x1(lrelu(bn(conv3x3(lrelu(bn(conv1x1(cat[known, raw])
               -> 32)) -> c_alpha)) -> c_alpha))
      result = alpha * raw + (1 - alpha) * known

All convolutions have a bias and zero "SAME" padding fixed per layer
(`layers.same_padding`: k7 s2 pads (2, 3), k5 s2 (1, 2), k3 s2 (0, 1), k3 s1 (1, 1)).
The fusion heads always use BatchNorm and LeakyReLU(0.2), whatever `norm` says.
`norm="instance"` is PyTorch's InstanceNorm2d without affine parameters.

H and W must be multiples of 2**depth (the skip concatenations need exact halving);
other sizes are refused with a ValueError. The inference adapter resizes to the
trained size, as the official test script does.

Published model (Places2 512 and CelebA 256 checkpoints, one network): depth 8,
en_ksize 7,5,5,3,3,3,3,3, de_ksize 3 x 8, blend_layers 0..5, c_alpha 3:
32,880,504 parameters.

Conventions: the module takes the project's convention (image RGB in [0, 1], mask
1 = hole) and turns it into DFNet's (1 = known) inside. Outputs are lists ordered
finest first. `pred` is the finest fusion result itself, not composited: the losses
read the raw results, and the inference engine composites.

Deliberate extensions (off by default, not in the official code):
* `coord_conv=True`: CoordConv as the TF2 port describes it: two coordinate channels
  (`layers.add_coord_channels`) are appended to the input of every encoder and decoder
  convolution. Unlike the port we also give them to the first encoder conv (the port
  skips it by a positional-argument slip) and append them once, after the skip
  concatenation, instead of before the upsampling and again on the skip.
* `act_*="elu"` works (the official `get_activation('elu')` raises).
* `c_base` / `c_max`: the official class hard-codes 64 and 512.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaint_jax.models.fields import store_int_tuples
from inpaint_jax.models.layers import (
  Conv,
  ConvTranspose,
  add_coord_channels,
  resize_bilinear,
  same_padding,
)
from inpaint_jax.models.norm import BatchNorm, instance_norm
from inpaint_jax.registry import GENERATORS

Array = jax.Array

MODES = ("nearest", "deconv")
NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "none")
FUSION_HIDDEN = 32  # official: max(6 // 2, 32)


def activation(name: str, x: Array) -> Array:
  """The official `get_activation` choices; leaky_relu has slope 0.2."""
  if name == "relu":
    return nn.relu(x)
  if name == "leaky_relu":
    return nn.leaky_relu(x, 0.2)
  if name == "elu":
    return nn.elu(x)
  if name == "tanh":
    return jnp.tanh(x)
  if name == "sigmoid":
    return jax.nn.sigmoid(x)
  if name == "none":
    return x
  raise ValueError(f"DFNet: activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")


def upsample_nearest2x(x: Array) -> Array:
  """Nearest x2 upsampling (PyTorch `F.interpolate(scale_factor=2)`), NHWC."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def encoder_widths(depth: int, c_base: int, c_max: int) -> list[int]:
  """Output channels of en_0 .. en_{depth-1}: c_base, then min(2 c_in, c_max)."""
  widths = [c_base]
  for _ in range(depth - 1):
    widths.append(min(2 * widths[-1], c_max))
  return widths


class FusionBlock(nn.Module):
  """One fusion block: (img_miss, decoder features) -> (result, alpha, raw).

  Attributes:
    c_img: image channels (3).
    c_alpha: alpha channels (1: one alpha for all colours; the published net: 3).
    dtype: computation dtype.
  """

  c_img: int = 3
  c_alpha: int = 3
  dtype: Any = None

  @nn.compact
  def __call__(self, img_miss: Array, feat: Array, *, train: bool
               ) -> tuple[Array, Array, Array]:
    """img_miss (N, H, W, c_img), feat (N, h, w, C) -> three (N, h, w, c) float32 maps."""
    known = resize_bilinear(img_miss, *feat.shape[1:3]).astype(jnp.float32)
    raw = jax.nn.sigmoid(
        Conv(self.c_img, 1, dtype=self.dtype, name="map2img")(feat).astype(jnp.float32))
    x = jnp.concatenate([known, raw], axis=-1)
    if self.dtype is not None:
      x = x.astype(self.dtype)
    x = Conv(FUSION_HIDDEN, 1, dtype=self.dtype, name="blend_conv0")(x)
    x = nn.leaky_relu(BatchNorm(dtype=self.dtype, name="blend_bn0")(x, train=train), 0.2)
    x = Conv(self.c_alpha, 3, padding=1, dtype=self.dtype, name="blend_conv1")(x)
    x = nn.leaky_relu(BatchNorm(dtype=self.dtype, name="blend_bn1")(x, train=train), 0.2)
    x = Conv(self.c_alpha, 1, dtype=self.dtype, name="blend_conv2")(x)
    alpha = jax.nn.sigmoid(x.astype(jnp.float32))
    result = alpha * raw + (1.0 - alpha) * known
    return result, alpha, raw


@GENERATORS.register("dfnet")
class DFNet(nn.Module):
  """DFNet generator with the official options.

  Attributes:
    c_img: image channels (3).
    c_mask: mask channels (1).
    c_alpha: alpha channels of each fusion block.
    mode: decoder upsampling: `nearest` (official default) or `deconv` (a k2 s2
      ConvTranspose with c_up -> c_up channels, bias).
    norm: encoder/decoder normalisation: batch | instance | none.
    act_en: encoder activation (relu).
    act_de: decoder activation (leaky_relu, slope 0.2).
    en_ksize: encoder kernel sizes; their number is the depth.
    de_ksize: decoder kernel sizes in execution order (coarsest first), as the
      official constructor takes them; the same length as en_ksize.
    blend_layers: levels (0 = full resolution) that get a fusion block; must
      contain 0.
    c_base: width of en_0 (official: 64).
    c_max: width cap of the encoder (official: 512).
    coord_conv: append coordinate channels to every encoder/decoder conv input.
    dtype: computation dtype (None: float32); outputs are float32.
  """

  c_img: int = 3
  c_mask: int = 1
  c_alpha: int = 3
  mode: str = "nearest"
  norm: str = "batch"
  act_en: str = "relu"
  act_de: str = "leaky_relu"
  en_ksize: Sequence[int] = (7, 5, 5, 3, 3, 3, 3, 3)
  de_ksize: Sequence[int] = (3,) * 8
  blend_layers: Sequence[int] = (0, 1, 2, 3, 4, 5)
  c_base: int = 64
  c_max: int = 512
  coord_conv: bool = False
  dtype: Any = None

  def __post_init__(self):
    store_int_tuples(self, "en_ksize", "de_ksize", "blend_layers")
    super().__post_init__()

  @property
  def depth(self) -> int:
    return len(self.en_ksize)

  def check_size(self, height: int, width: int) -> None:
    """Raises a ValueError unless H and W are multiples of 2**depth."""
    factor = 2 ** self.depth
    if height % factor or width % factor:
      raise ValueError(
          f"DFNet with {self.depth} levels needs H and W to be multiples of {factor} "
          f"(2**levels), got {height}x{width}; resize the input (the official test script "
          f"resizes to 512 or 256)")

  def _validate(self) -> None:
    if len(self.de_ksize) != self.depth or self.depth < 1:
      raise ValueError(f"DFNet: en_ksize and de_ksize need the same length >= 1, got "
                       f"{list(self.en_ksize)} and {list(self.de_ksize)}")
    if 0 not in self.blend_layers or any(not 0 <= b < self.depth for b in self.blend_layers):
      raise ValueError(f"DFNet: blend_layers must contain 0 and lie in [0, {self.depth}), "
                       f"got {list(self.blend_layers)}")
    if self.mode not in MODES:
      raise ValueError(f"DFNet: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
    if self.norm not in NORMS:
      raise ValueError(f"DFNet: norm must be one of {', '.join(NORMS)}, got {self.norm!r}")

  def _norm_act(self, x: Array, act: str, name: str, train: bool) -> Array:
    if self.norm == "batch":
      x = BatchNorm(dtype=self.dtype, name=name)(x, train=train)
    elif self.norm == "instance":
      x = instance_norm(x)
    return activation(act, x)

  def _conv(self, x: Array, features: int, k: int, stride: int, name: str) -> Array:
    if self.coord_conv:
      x = add_coord_channels(x)
    pad = same_padding(k, stride)
    return Conv(features, k, strides=stride, padding=(pad, pad), dtype=self.dtype, name=name)(x)

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Any]:
    """Inpaints a batch.

    Args:
      image: (N, H, W, c_img) in [0, 1] (the hole content is ignored).
      mask: (N, H, W, 1), 1 = hole (the project's convention).
      train: BatchNorm in train mode (pass `mutable=['batch_stats']`) or eval mode.

    Returns:
      {"pred": (N, H, W, c_img) the finest fusion result,
       "scales": [result at level l for l in sorted(blend_layers)] (finest first;
         level l is (N, H / 2**l, W / 2**l, c_img)),
       "alphas": the matching (N, h, w, c_alpha) alpha maps,
       "raws": the matching (N, h, w, c_img) raw predictions}, all float32.
      With `mutable=['intermediates']`, the encoder outputs `enc_i` (i >= 1, after the
      activation) and the decoder outputs `dec_l` are sown under `intermediates`.

    Raises:
      ValueError: bad shapes, H or W not a multiple of 2**depth, or bad options.
    """
    self._validate()
    if image.ndim != 4 or mask.shape != image.shape[:3] + (self.c_mask,):
      raise ValueError(f"DFNet expects image (N,H,W,{self.c_img}) and mask "
                       f"(N,H,W,{self.c_mask}), got {image.shape} and {mask.shape}")
    if image.shape[-1] != self.c_img:
      raise ValueError(f"DFNet: c_img={self.c_img}, got {image.shape[-1]} image channels")
    self.check_size(*image.shape[1:3])

    known = 1.0 - mask.astype(jnp.float32)
    img_miss = image.astype(jnp.float32) * known
    x = jnp.concatenate([img_miss, known], axis=-1)
    if self.dtype is not None:
      x = x.astype(self.dtype)

    widths = encoder_widths(self.depth, self.c_base, self.c_max)
    skips = [x]  # skip_l = the input of en_l
    for i, (k, c) in enumerate(zip(self.en_ksize, widths, strict=True)):
      x = self._conv(x, c, k, 2, name=f"en_{i}")
      if i > 0:
        x = self._norm_act(x, self.act_en, f"en_{i}_norm", train)
        self.sow("intermediates", f"enc_{i}", x)
      skips.append(x)

    results, alphas, raws = {}, {}, {}
    for j, k in enumerate(self.de_ksize):
      level = self.depth - 1 - j
      skip = skips[level]
      if self.mode == "deconv":
        x = ConvTranspose(x.shape[-1], 2, strides=2, dtype=self.dtype,
                          name=f"de_{level}_up")(x)
      else:
        x = upsample_nearest2x(x)
      x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
      x = self._conv(x, skip.shape[-1], k, 1, name=f"de_{level}")
      x = self._norm_act(x, self.act_de, f"de_{level}_norm", train)
      self.sow("intermediates", f"dec_{level}", x)
      if level in self.blend_layers:
        results[level], alphas[level], raws[level] = FusionBlock(
            self.c_img, self.c_alpha, dtype=self.dtype, name=f"fuse_{level}")(
                img_miss, x, train=train)

    levels = sorted(results)
    scales = [results[lv] for lv in levels]
    return {"pred": scales[0], "scales": scales, "alphas": [alphas[lv] for lv in levels],
            "raws": [raws[lv] for lv in levels]}
