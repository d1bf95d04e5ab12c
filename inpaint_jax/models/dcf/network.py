r"""DCF ("Dynamic Coarse-to-Fine" inpainting, GitHub menghanyan66/GCFN): generator and D.

Generator `dcf` (`OptimizedDCFInpaintingNetwork`):

  cat[masked image, mask] -> 3x3 conv + BN + ReLU -> 4 residual encoder blocks (each
  returns its pre-pool map as a skip and a 2x2 max-pooled map) -> 3x3 bottleneck at H/16
  -> progressive refinement (1x1 channel adapter, then up to 3 attention stages on the
  H/16 map) -> 4 decoder blocks (ConvTranspose k2 s2, bilinear resize to the skip,
  concat, two 3x3 conv + BN + ReLU; decoder4's skip is cat[skip3, refined resized to
  H/4], decoder1 reuses skip1 and resizes its 2H map back to H) -> smooth blending on
  the ring around the hole -> 3x3 conv + BN + ReLU -> 3x3 conv -> tanh, composited with
  the known pixels. Each stage also has a head (features resized bilinearly to H, then
  3x3 conv + tanh, composited) for deep supervision.

A refinement stage: four "quarter" crops of the current H/16 map around the hole's
centroid, resized back to the map size; attention of the current map (1x1 queries) over
each crop (1x1 keys and values), softmax *without* any scaling, the attended values
averaged over the four quarters, 3x3 conv + BN + ReLU, and `gamma * that + beta *
features`; then two 3x3 conv + BN + ReLU. Every stage but the last scores its quarters
(sum over hole queries of the attention mass) and, in the official code, runs the
fusion a second time with only the quarters scoring at least the 0.85 quantile. In exact
arithmetic every score equals the number of hole cells on the H/16 grid (each softmax row
sums to 1), so the 0.85 quantile of four equal numbers is that number and every gate is
1: the second pass repeats the first. Only float rounding makes the scores differ, so
the official float gates are effectively arbitrary (PyTorch disagrees with itself across
thread counts); `importance_gate="all"` (default) takes the exact result.

Dynamic scales: b = the largest hole bounding-box side in the *batch* (an empty mask
counts min(H, W) // 2); scales min(b, max_scale_size), halved while >= min_scale_size,
plus a final min_scale_size if the list is empty or ends above it; min(len, 3) stages.
Jit: all `refinement_stages` stages are always computed and the data-dependent count
selects among them (a static maximum with masking): the decoder reads the last active
stage, inactive stages leave their BatchNorm statistics unchanged and get zero
gradients, and the output `stage_active` (one 0/1 value per stage) lets the loss recipe
weight the stage heads (`scale_by="stage_active[i]"`). One compiled program serves
every stage count.

Bug switches (faithful by default):
  quarter_crops   official: the crop corners and side come from the hole centroid and
                  the scale in *image pixels* but index the H/16 map (the side is
                  clipped to the map), so three quarters are usually empty or partial
                  and the fourth is the whole map. fixed: centroid and side are
                  converted to feature cells first (side = scale * Hf // H, at least 1).
  value_range     imagenet: the network sees ImageNet-normalised images and its tanh
                  output is compared with ImageNet-normalised targets that it cannot
                  reach (range about [-2.1, 2.6]). symmetric: images are scaled to
                  [-1, 1] (2x - 1), which the tanh output can reach.
  importance_gate all (default): every quarter is kept, which is what exact arithmetic
                  gives. The second pass would repeat the first, so it is not run, but
                  in train mode its BatchNorm updates the running statistics twice per
                  gated stage, as the official second pass does.
                  official: the float emulation: gates from our float32 scores and a
                  gated second fusion pass. Not reproducible (rounding decides); the
                  call argument `gates` injects another implementation's 0/1 gates for
                  tests.
  importance_shape official: the scores read the mask nearest-resized to a map shape
                  guessed from H*W (largest divisor <= sqrt), transposed for some
                  non-square maps. fixed: the real (Hf, Wf).

Whatever `value_range`, the module speaks the project convention: `image` in [0, 1],
`mask` 1 = hole, and `pred`, `stages` in [0, 1] (the tanh output mapped back), so the
loss recipe reproduces the official values with the per-term option `space="imagenet"`
(or `"symmetric"`), and VGG terms read the [0, 1] images as the official code's
de-normalisation does.

Discriminator `dcf_patch` (`SpectralNormDiscriminator`): spectral-norm convs k4 s2 p1
3 -> f -> 2f -> 4f (InstanceNorm after the second and third), LeakyReLU 0.2, then a
plain conv k4 s1 p1 -> 1; images only, no mask channel. It maps its [0, 1] input to the
generator's value range first, as the official D sees normalised images.

Layer names are the official state_dict prefixes with "." replaced by "_" (e.g.
`encoder2_shortcut_0`, `progressive_refinement_coarse_fusion_1_query_conv`), so the
converter maps keys mechanically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inpaint_jax.models.fields import store_int_tuples
from inpaint_jax.models.layers import Conv, ConvTranspose, resize_bilinear
from inpaint_jax.models.morphology import dilate, erode, gaussian_kernel
from inpaint_jax.models.norm import BatchNorm, instance_norm
from inpaint_jax.models.spectral_norm import SpectralNorm
from inpaint_jax.registry import DISCRIMINATORS, GENERATORS

Array = jax.Array

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
QUARTER_CROPS = ("official", "fixed")
VALUE_RANGES = ("imagenet", "symmetric")
IMPORTANCE_GATES = ("all", "official")
IMPORTANCE_SHAPES = ("official", "fixed")


def to_model_space(x: Array, value_range: str) -> Array:
  """[0, 1] RGB -> what the network reads: ImageNet-normalised or [-1, 1]."""
  if value_range == "imagenet":
    return (x - jnp.asarray(IMAGENET_MEAN, x.dtype)) / jnp.asarray(IMAGENET_STD, x.dtype)
  return 2.0 * x - 1.0


def to_unit_space(x: Array, value_range: str) -> Array:
  """Inverse of `to_model_space`."""
  if value_range == "imagenet":
    return x * jnp.asarray(IMAGENET_STD, x.dtype) + jnp.asarray(IMAGENET_MEAN, x.dtype)
  return (x + 1.0) * 0.5


def max_pool2(x: Array) -> Array:
  """2x2 stride-2 max-pool that floors odd sizes (PyTorch `MaxPool2d(2, 2)`)."""
  # Keyword window shape: ONNX converters that rewrite flax's pooling read it by name.
  return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")


# ----------------------------------------------------------------------------------------------
# Mask analysis (traced, so one compiled program serves every mask).
# ----------------------------------------------------------------------------------------------
def mask_geometry(mask: Array) -> tuple[Array, Array]:
  """Hole centroids and bounding-box sides, as the official `DynamicMaskAnalyzer`.

  Args:
    mask: (N, H, W, 1), 1 = hole; pixels > 0.5 count.

  Returns:
    centres (N, 2) float32 (cy, cx) in image pixels: the mean of the hole pixels' integer
    coordinates ((H // 2, W // 2) for an empty mask); sizes (N,) int32: max(bbox height,
    bbox width) (min(H, W) // 2 for an empty mask).
  """
  hole = mask[..., 0] > 0.5
  _, h, w = hole.shape
  count = jnp.sum(hole, axis=(1, 2))
  ys = jnp.arange(h, dtype=jnp.int32)[None, :, None]
  xs = jnp.arange(w, dtype=jnp.int32)[None, None, :]
  # Integer sums are exact, then one float32 division: what torch's float32 mean of the
  # integer coordinates gives for any realistic image size.
  denom = jnp.maximum(count, 1).astype(jnp.float32)
  cy = jnp.sum(jnp.where(hole, ys, 0), axis=(1, 2)).astype(jnp.float32) / denom
  cx = jnp.sum(jnp.where(hole, xs, 0), axis=(1, 2)).astype(jnp.float32) / denom
  empty = count == 0
  cy = jnp.where(empty, float(h // 2), cy)
  cx = jnp.where(empty, float(w // 2), cx)
  rows, cols = jnp.any(hole, axis=2), jnp.any(hole, axis=1)
  y0, y1 = jnp.argmax(rows, axis=1), h - 1 - jnp.argmax(rows[:, ::-1], axis=1)
  x0, x1 = jnp.argmax(cols, axis=1), w - 1 - jnp.argmax(cols[:, ::-1], axis=1)
  size = jnp.maximum(y1 - y0 + 1, x1 - x0 + 1).astype(jnp.int32)
  size = jnp.where(empty, min(h, w) // 2, size)
  return jnp.stack([cy, cx], axis=1), size


def dynamic_scales(bbox: Array, n_max: int, min_scale: int, max_scale: int,
                   factor: float) -> tuple[Array, Array]:
  """The official `generate_scales` on the batch's largest box, for the first n_max stages.

  Returns:
    (scales (n_max,) int32, num_stages () int32): stage i uses scales[i] when
    i < num_stages.
  """
  cur = jnp.minimum(bbox, max_scale).astype(jnp.int32)
  listed = []
  for _ in range(n_max):
    listed.append(cur)
    cur = jnp.floor(cur.astype(jnp.float32) * factor).astype(jnp.int32)
  listed = jnp.stack(listed)
  k = jnp.sum((listed >= min_scale).astype(jnp.int32))     # the halving list is a prefix
  last = listed[jnp.maximum(k - 1, 0)]
  appended = (k == 0) | (last > min_scale)
  n = jnp.where(k >= n_max, n_max, k + appended.astype(jnp.int32))
  scales = jnp.where(jnp.arange(n_max) < k, listed, min_scale)
  return scales, n.astype(jnp.int32)


def _resize_matrix(side: Array, out: int) -> Array:
  """(out, out) matrix A with A @ v = bilinear resize of v[:side] to `out` samples.

  PyTorch's rule (align_corners=False): src = max(scale * (i + 0.5) - 0.5, 0) with
  scale = side / out, i0 = floor(src), i1 = min(i0 + 1, side - 1), weights 1 - l, l.
  Columns >= side are zero, so whatever lies past the crop is ignored.
  """
  scale = side.astype(jnp.float32) / out
  src = jnp.maximum(scale * (jnp.arange(out, dtype=jnp.float32) + 0.5) - 0.5, 0.0)
  i0 = jnp.floor(src).astype(jnp.int32)
  i1 = i0 + (i0 < side - 1).astype(jnp.int32)
  l1 = src - i0.astype(jnp.float32)
  cols = jnp.arange(out)[None, :]
  return ((1.0 - l1)[:, None] * (cols == i0[:, None]) + l1[:, None] * (cols == i1[:, None]))


def quarter_crops(features: Array, centres: Array, scale: Array, image_hw: tuple[int, int],
                  mode: str) -> Array:
  """The four quarter patches around each hole, resized to the map size.

  Args:
    features: (N, Hf, Wf, C).
    centres: (N, 2) hole centroids in image pixels.
    scale: () int32, the stage's scale in image pixels.
    image_hw: (H, W) of the image.
    mode: official | fixed (see the module docstring).

  Returns:
    (N, 4, Hf, Wf, C): crop q of side s, top-left corner
    q0 (max(0, int(cy - s)), max(0, int(cx - s))), q1 (max(0, int(cy - s)),
    min(Wf - s, int(cx))), q2 (min(Hf - s, int(cy)), max(0, int(cx - s))),
    q3 (min(Hf - s, int(cy)), min(Wf - s, int(cx))), zero past the map, resized bilinearly.
  """
  _, hf, wf, _ = features.shape
  h, w = image_hw
  cy, cx = centres[:, 0], centres[:, 1]
  if mode == "official":
    side = jnp.minimum(scale, min(hf, wf))
  else:
    side = jnp.clip(jnp.minimum(scale * hf // h, scale * wf // w), 1, min(hf, wf))
    cy, cx = cy * (hf / h), cx * (wf / w)
  s = side.astype(jnp.float32)
  # int() truncates toward zero; where it differs from floor (negative values), max(0, .)
  # gives 0 either way.
  ya = jnp.maximum(0, jnp.floor(cy - s).astype(jnp.int32))
  xa = jnp.maximum(0, jnp.floor(cx - s).astype(jnp.int32))
  yb = jnp.minimum(hf - side, jnp.floor(cy).astype(jnp.int32))
  xb = jnp.minimum(wf - side, jnp.floor(cx).astype(jnp.int32))
  ys = jnp.stack([ya, ya, yb, yb], axis=1)
  xs = jnp.stack([xa, xb, xa, xb], axis=1)
  # A corner past the map gives an all-zero crop.
  ys, xs = jnp.minimum(ys, hf), jnp.minimum(xs, wf)
  # Crop and resize in one matrix per axis: row i of A_y holds ah[i, p - y] at input row p
  # (zero where p - y falls outside [0, Hf), i.e. past the map), built as ah times a 0/1
  # shift matrix, so each crop is products with exact 0s and 1s. No per-example gathers or
  # dynamic slices (graph converters handle the matrix products with a symbolic batch).
  ah, aw = _resize_matrix(side, hf), _resize_matrix(side, wf)
  hp = jax.lax.Precision.HIGHEST
  ay = jnp.einsum("ih,nqhp->nqip", ah, _shift_matrices(ys, hf), precision=hp)
  ax = jnp.einsum("jw,nqwx->nqjx", aw, _shift_matrices(xs, wf), precision=hp)
  return jnp.einsum("nqip,npxc,nqjx->nqijc", ay, features, ax, precision=hp)


def _shift_matrices(offsets: Array, size: int) -> Array:
  """(N, 4) offsets o -> (N, 4, size, size) 0/1 float32 S with S[n, q, h, p] = [p == o + h]."""
  rows = jnp.arange(size, dtype=jnp.int32)
  return (rows[None, None, None, :] == (offsets[:, :, None, None] + rows[None, None, :, None])
          ).astype(jnp.float32)


def legacy_nearest_indices(size_in: int, size_out: int) -> np.ndarray:
  """PyTorch `F.interpolate(mode='nearest')` source indices: floor(i * in / out)."""
  scale = np.float32(size_in) / np.float32(size_out)
  return np.minimum(np.floor(np.arange(size_out, dtype=np.float32) * scale).astype(np.int64),
                    size_in - 1)


def attention_map_shape(hf: int, wf: int, mode: str) -> tuple[int, int]:
  """The map shape the importance scores assume: official guesses it from Hf * Wf."""
  if mode == "fixed":
    return hf, wf
  hw = hf * wf
  side = int(math.sqrt(hw))
  if side * side == hw:
    return side, side
  for a in range(side, 0, -1):
    if hw % a == 0:
      return a, hw // a
  return side, side


def importance_scores(attention: Array, mask: Array, map_hw: tuple[int, int],
                      mode: str) -> Array:
  """Σ over hole queries of Σ over keys of each quarter's attention: (N, 4).

  The mask is nearest-resized (PyTorch's legacy floor rule) to the shape
  `attention_map_shape(*map_hw, mode)`.
  """
  n = attention.shape[0]
  ha, wa = attention_map_shape(*map_hw, mode)
  h, w = mask.shape[1:3]
  m = mask[:, legacy_nearest_indices(h, ha)][:, :, legacy_nearest_indices(w, wa)]
  m = m.reshape(n, ha * wa)
  return jnp.einsum("np,nqp->nq", m, jnp.sum(attention, axis=-1),
                    precision=jax.lax.Precision.HIGHEST)


def quantile_gates(scores: Array, keep: float) -> Array:
  """1 for quarters scoring >= the `keep` quantile (linear interpolation), per sample."""
  threshold = jnp.quantile(scores, keep, axis=1, keepdims=True, method="linear")
  return (scores >= threshold).astype(scores.dtype)


# ----------------------------------------------------------------------------------------------
# The generator.
# ----------------------------------------------------------------------------------------------
@GENERATORS.register("dcf")
class DCF(nn.Module):
  """DCF generator (see the module docstring).

  Attributes:
    input_channels: image channels (3).
    encoder_depths: widths of the 4 encoder blocks (published 48, 96, 192, 384).
    decoder_depths: decoder widths (published 384, 192, 96, 48); decoder_depths[0] must
      equal encoder_depths[3] and decoder_depths[3] must equal hidden_dim.
    hidden_dim: width of the refinement stages and of the smooth blending (48).
    refinement_stages: the most stages (3).
    min_scale_size, max_scale_size, scale_factor: the dynamic scales (8, 128, 0.5).
    dropout_rate: the gate keeps quarters scoring >= the (1 - rate) quantile (0.15).
    smooth_kernel_size, smooth_sigma: the Gaussian that feathers the mask (11, 2.5).
    boundary_dilation: the ring's dilate/erode window (7).
    quarter_crops, value_range, importance_gate, importance_shape: the switches.
    dtype: computation dtype (None: float32).
  """

  input_channels: int = 3
  encoder_depths: Sequence[int] = (48, 96, 192, 384)
  decoder_depths: Sequence[int] = (384, 192, 96, 48)
  hidden_dim: int = 48
  refinement_stages: int = 3
  min_scale_size: int = 8
  max_scale_size: int = 128
  scale_factor: float = 0.5
  dropout_rate: float = 0.15
  smooth_kernel_size: int = 11
  smooth_sigma: float = 2.5
  boundary_dilation: int = 7
  quarter_crops: str = "official"
  value_range: str = "imagenet"
  importance_gate: str = "all"
  importance_shape: str = "official"
  dtype: Any = None

  def __post_init__(self):
    store_int_tuples(self, "encoder_depths", "decoder_depths")
    super().__post_init__()

  def _validate(self, image: Array, mask: Array, gates: Array | None) -> None:
    for field, value, accepted in (("quarter_crops", self.quarter_crops, QUARTER_CROPS),
                                   ("value_range", self.value_range, VALUE_RANGES),
                                   ("importance_gate", self.importance_gate, IMPORTANCE_GATES),
                                   ("importance_shape", self.importance_shape,
                                    IMPORTANCE_SHAPES)):
      if value not in accepted:
        raise ValueError(f"config field generator.{field}={value!r} is not accepted; "
                         f"accepted: {', '.join(accepted)}")
    if len(self.encoder_depths) != 4 or len(self.decoder_depths) != 4:
      raise ValueError("config fields generator.encoder_depths / decoder_depths need 4 "
                       f"widths, got {self.encoder_depths} / {self.decoder_depths}")
    if self.decoder_depths[0] != self.encoder_depths[3]:
      raise ValueError("config field generator.decoder_depths[0] must equal "
                       f"encoder_depths[3] (the bottleneck width), got {self.decoder_depths}")
    if self.hidden_dim != self.decoder_depths[3]:
      raise ValueError("config field generator.hidden_dim must equal decoder_depths[3]: the "
                       "smooth blending runs on decoder1's output (the official code "
                       f"crashes otherwise), got {self.hidden_dim} and {self.decoder_depths}")
    if image.ndim != 4 or image.shape[-1] != self.input_channels or \
        mask.shape != image.shape[:3] + (1,):
      raise ValueError(f"DCF expects image (N, H, W, {self.input_channels}) and mask "
                       f"(N, H, W, 1), got {image.shape} and {mask.shape}")
    if min(image.shape[1:3]) < 16:
      raise ValueError(f"DCF needs H, W >= 16 (four 2x2 pools), got {image.shape[1:3]}")
    if gates is not None and self.importance_gate != "official":
      raise ValueError("injected gates need config field generator.importance_gate="
                       f"'official', got {self.importance_gate!r}")

  # --- layers named after the official state_dict prefixes -------------------------------
  def _conv(self, name: str, x: Array, features: int, k: int = 3) -> Array:
    return Conv(features, k, padding=k // 2, dtype=self.dtype, name=name.replace(".", "_"))(x)

  def _bn(self, name: str, x: Array, train: bool, update: Array | None = None) -> Array:
    return BatchNorm(dtype=self.dtype, name=name.replace(".", "_"))(x, train=train,
                                                                     update=update)

  def _cbr(self, prefix: str, x: Array, features: int, train: bool, k: int = 3,
           update: Array | None = None) -> Array:
    """Sequential(conv k, BN, ReLU) at `prefix.0` / `prefix.1`."""
    x = self._conv(f"{prefix}.0", x, features, k)
    return nn.relu(self._bn(f"{prefix}.1", x, train, update))

  def _encoder(self, name: str, x: Array, features: int, train: bool) -> tuple[Array, Array]:
    identity = x
    if x.shape[-1] != features:
      identity = self._bn(f"{name}.shortcut.1", self._conv(f"{name}.shortcut.0", x, features, 1),
                          train)
    out = nn.relu(self._bn(f"{name}.bn1", self._conv(f"{name}.conv1", x, features), train))
    out = self._bn(f"{name}.bn2", self._conv(f"{name}.conv2", out, features), train)
    out = nn.relu(out + identity)
    return out, max_pool2(out)

  def _decoder(self, name: str, x: Array, skip: Array, features: int, train: bool) -> Array:
    x = ConvTranspose(x.shape[-1] // 2, 2, strides=2, dtype=self.dtype,
                      name=f"{name}_upconv")(x)
    x = resize_bilinear(x, *skip.shape[1:3])
    x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
    x = nn.relu(self._bn(f"{name}.bn1", self._conv(f"{name}.conv1", x, features), train))
    return nn.relu(self._bn(f"{name}.bn2", self._conv(f"{name}.conv2", x, features), train))

  def _fusion_layers(self, stage: int):
    """The fusion module of a stage, as a function (called once or twice per stage)."""
    p = f"progressive_refinement.coarse_fusion.{stage}"
    c = self.hidden_dim
    dq = max(c // 4, 16)
    q_conv = Conv(dq, 1, dtype=self.dtype, name=f"{p}.query_conv".replace(".", "_"))
    k_conv = Conv(dq, 1, dtype=self.dtype, name=f"{p}.key_conv".replace(".", "_"))
    v_conv = Conv(c, 1, dtype=self.dtype, name=f"{p}.value_conv".replace(".", "_"))
    post_conv = Conv(c, 3, padding=1, dtype=self.dtype,
                     name=f"{p}.post_attention.0".replace(".", "_"))
    post_bn = BatchNorm(dtype=self.dtype, name=f"{p}.post_attention.1".replace(".", "_"))
    gamma = self.param(f"{p}.gamma".replace(".", "_"), nn.initializers.zeros, (1,))
    beta = self.param(f"{p}.beta".replace(".", "_"), nn.initializers.ones, (1,))

    def fuse(quarters: Array, feats: Array, gate: Array | None, train: bool,
             update: Array, update_twice: Array | None = None) -> tuple[Array, Array]:
      """(N, 4, Hf, Wf, C) quarters, (N, Hf, Wf, C) map -> (fused (N, Hf, Wf, C),
      attention (N, 4, Hf * Wf, Hf * Wf))."""
      n, hf, wf, _ = feats.shape
      q = q_conv(feats).reshape(n, hf * wf, dq)
      flat = quarters.reshape((n * 4,) + quarters.shape[2:])
      k = k_conv(flat).reshape(n, 4, hf * wf, dq)
      v = v_conv(flat).reshape(n, 4, hf * wf, c)
      hp = jax.lax.Precision.HIGHEST
      logits = jnp.einsum("npd,nqkd->nqpk", q, k, precision=hp)   # no 1/sqrt(d)
      attention = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)
      used = attention if gate is None else attention * gate[:, :, None, None]
      out = jnp.einsum("nqpk,nqkc->nqpc", used, v, precision=hp)
      out = jnp.mean(out, axis=1).reshape(n, hf, wf, c)           # mean over 4, gated or not
      post = nn.relu(post_bn(post_conv(out), train=train, update=update,
                             update_twice=update_twice))
      return gamma * post + beta * feats, attention

    return fuse

  def _refine(self, x: Array, mask: Array, train: bool, gates: Array | None,
              image_hw: tuple[int, int]) -> dict[str, Any]:
    pr = "progressive_refinement"
    feats = self._cbr(f"{pr}.channel_adapter", x, self.hidden_dim, train, k=1)
    self.sow("intermediates", "refine_in", feats)
    centres, sizes = mask_geometry(mask)
    scales, num = dynamic_scales(jnp.max(sizes), self.refinement_stages, self.min_scale_size,
                                 self.max_scale_size, self.scale_factor)
    keep = 1.0 - self.dropout_rate
    current = feats
    stage_feats, used_gates, all_scores = [], [], []
    for i in range(self.refinement_stages):
      active = i < num
      gated = i < num - 1
      quarters = quarter_crops(current, centres, scales[i], image_hw, self.quarter_crops)
      self.sow("intermediates", f"stage{i}_quarters", quarters)
      fuse = self._fusion_layers(i)
      # Exact gates: the official second pass of a gated stage repeats the first, and
      # its only trace is the second update of the fusion BN's running statistics.
      twice = gated if self.importance_gate == "all" else None
      fused, attention = fuse(quarters, current, None, train, active, twice)
      self.sow("intermediates", f"stage{i}_attention", attention)
      scores = importance_scores(attention, mask, current.shape[1:3], self.importance_shape)
      all_scores.append(scores)
      if self.importance_gate == "official" and i < self.refinement_stages - 1:
        gate = quantile_gates(scores, keep)
        if gates is not None:
          gate = jnp.asarray(gates[i], gate.dtype)
        used_gates.append(gate)
        # The gated pass runs (and updates its BN) only on stages that are not the last.
        fused2, _ = fuse(quarters, current, gate, train, gated)
        fused = jnp.where(gated, fused2, fused)
      elif i < self.refinement_stages - 1:
        used_gates.append(jnp.ones_like(scores))
      self.sow("intermediates", f"stage{i}_fused", fused)
      out = self._cbr(f"{pr}.stage_processors.{i}", fused, self.hidden_dim, train,
                      update=active)
      out = self._cbr(f"{pr}.scale_convs.{i}", out, self.hidden_dim, train, update=active)
      stage_feats.append(out)
      current = jnp.where(active, out, current)
    return {"refined": current, "stage_features": stage_feats, "num_stages": num,
            "scales": scales, "scores": jnp.stack(all_scores),
            "gates": jnp.stack(used_gates) if used_gates else jnp.zeros((0,) + sizes.shape + (4,))}

  def _smooth_blend(self, h: Array, masked: Array, mask: Array, train: bool
                    ) -> tuple[Array, Array]:
    p = "smooth_blending"
    b = jnp.concatenate([masked, mask.astype(masked.dtype)], axis=-1)
    b = nn.relu(self._conv(f"{p}.boundary_detector.0", b, 32))
    b = nn.relu(self._conv(f"{p}.boundary_detector.2", b, 16))
    b = jax.nn.sigmoid(self._conv(f"{p}.boundary_detector.4", b, 1))
    self.sow("intermediates", "boundary_map", b)
    k = self.smooth_kernel_size
    g = gaussian_kernel(k, self.smooth_sigma)[:, :, None, None].astype(mask.dtype)
    smooth = jax.lax.conv_general_dilated(mask, g, (1, 1), ((k // 2, k // 2),) * 2,
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                          precision=jax.lax.Precision.HIGHEST)
    self.sow("intermediates", "smooth_mask", smooth)
    c = self.hidden_dim
    branches = [self._cbr(f"{p}.smooth_conv.{j}", h, c, train, k=ks)
                for j, ks in enumerate((3, 5, 7))]
    fused = jnp.concatenate(branches + [b.astype(h.dtype)], axis=-1)
    fused = nn.relu(self._bn(f"{p}.fusion_conv.1", self._conv(f"{p}.fusion_conv.0", fused,
                                                              2 * c), train))
    fused = nn.relu(self._bn(f"{p}.fusion_conv.4", self._conv(f"{p}.fusion_conv.3", fused, c),
                             train))
    wgt = jnp.concatenate([fused, smooth.astype(fused.dtype)], axis=-1)
    wgt = nn.relu(self._conv(f"{p}.blend_weight_predictor.0", wgt, 32))
    wgt = jax.nn.sigmoid(self._conv(f"{p}.blend_weight_predictor.2", wgt, 1))
    ring = dilate(mask, self.boundary_dilation) - erode(mask, self.boundary_dilation)
    self.sow("intermediates", "blend_ring", ring)
    a = wgt * ring.astype(wgt.dtype)
    return fused * a + h * (1.0 - a), wgt

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool, gates: Array | None = None,
               model_space: bool = False) -> dict[str, Any]:
    """Inpaints a batch.

    Args:
      image: (N, H, W, 3) RGB in [0, 1] (the hole content is ignored); with
        `model_space=True` already in the network's value range (tests).
      mask: (N, H, W, 1), 1 = hole.
      train: BatchNorm in train mode (pass `mutable=['batch_stats']`) or eval mode.
      gates: optional (refinement_stages - 1, N, 4) 0/1 gates replacing the computed
        float gates; only with `importance_gate="official"` (tests against another
        implementation).
      model_space: see `image`.

    Returns:
      {"pred": (N, H, W, 3) the tanh output mapped to [0, 1],
       "stages": [(N, H, W, 3) composited stage-head outputs in [0, 1]] (one per stage,
         inactive ones included), "stage_active": [() 0/1 per stage],
       "blend_map": (N, H, W, 1) the blend weights,
       "raw_model", "output_model": (N, H, W, 3) the tanh output and the composite in the
         network's value range, "stages_model": the stage outputs likewise,
       "stage_features": [(N, Hf, Wf, hidden_dim)], "num_stages": () int32,
       "scores": (stages, N, 4), "gates": (stages - 1, N, 4) the gates used (all ones
         with `importance_gate="all"`)}.
      With `mutable=['intermediates']` the taps are sown under `intermediates`.
    """
    self._validate(image, mask, gates)
    vr = self.value_range
    mask = mask.astype(jnp.float32)
    x_model = image.astype(jnp.float32) if model_space else to_model_space(
        image.astype(jnp.float32), vr)
    masked = x_model * (1.0 - mask)
    if self.dtype is not None:
      masked, mask_c = masked.astype(self.dtype), mask.astype(self.dtype)
    else:
      mask_c = mask
    h, w = image.shape[1:3]
    enc, dec = self.encoder_depths, self.decoder_depths
    x = self._cbr("input_conv", jnp.concatenate([masked, mask_c], axis=-1), enc[0], train)
    skip1, x = self._encoder("encoder1", x, enc[0], train)
    skip2, x = self._encoder("encoder2", x, enc[1], train)
    skip3, x = self._encoder("encoder3", x, enc[2], train)
    _, x = self._encoder("encoder4", x, enc[3], train)   # its pre-pool map is unused
    x = self._cbr("bottleneck", x, enc[3], train)
    self.sow("intermediates", "bottleneck", x)
    ref = self._refine(x, mask, train, gates, (h, w))
    refined = resize_bilinear(ref["refined"], *skip3.shape[1:3])
    self.sow("intermediates", "refined_up", refined)
    x = self._decoder("decoder4", x, jnp.concatenate([skip3, refined], axis=-1), dec[1], train)
    self.sow("intermediates", "dec4", x)
    x = self._decoder("decoder3", x, skip2, dec[2], train)
    x = self._decoder("decoder2", x, skip1, dec[3], train)
    x = self._decoder("decoder1", x, skip1, dec[3], train)
    x, blend_map = self._smooth_blend(x, masked, mask_c, train)
    x = self._cbr("output_conv", x, dec[3] // 2, train)
    raw = jnp.tanh(self._conv("output_conv.3", x, self.input_channels).astype(jnp.float32))
    keep = x_model * (1.0 - mask) * (1.0 - mask)   # masked_image * (1 - mask), as official
    output = keep + raw * mask
    stages_model = []
    for i, f in enumerate(ref["stage_features"]):
      up = resize_bilinear(f, h, w)                 # upsample first, then the head conv
      s = jnp.tanh(self._conv(f"stage_outputs.{i}.0", up, self.input_channels)
                   .astype(jnp.float32))
      stages_model.append(keep + s * mask)
    num = ref["num_stages"]
    return {"pred": to_unit_space(raw, vr),
            "stages": [to_unit_space(s, vr) for s in stages_model],
            "stage_active": [(i < num).astype(jnp.float32)
                             for i in range(self.refinement_stages)],
            "blend_map": blend_map.astype(jnp.float32),
            "raw_model": raw, "output_model": output, "stages_model": stages_model,
            "stage_features": [f.astype(jnp.float32) for f in ref["stage_features"]],
            "num_stages": num, "scores": ref["scores"], "gates": ref["gates"]}


# ----------------------------------------------------------------------------------------------
# The discriminator.
# ----------------------------------------------------------------------------------------------
@DISCRIMINATORS.register("dcf_patch")
class DCFPatchDiscriminator(nn.Module):
  """DCF's spectral-norm PatchGAN (see the module docstring).

  Attributes:
    input_channels: image channels (3; D sees no mask).
    filters: width of the first conv (published 48).
    value_range: imagenet | symmetric, the generator's: D reads its [0, 1] input in it.
    model_space: the input is already in that value range (tests).
    dtype: computation dtype (None: float32).

  Variables: params `model_{0,2,5}/layer/{kernel,bias}` (spectral-norm convs),
  `model_8/{kernel,bias}`; spectral `model_{0,2,5}/{u,v}`.
  """

  input_channels: int = 3
  filters: int = 48
  value_range: str = "imagenet"
  model_space: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> tuple[Array, list[Array]]:
    """Scores patches.

    Args:
      x: (N, H, W, input_channels) in [0, 1].
      train: one power iteration per spectral-norm conv, stored (pass
        `mutable=['spectral']`); False uses the stored u, v.

    Returns:
      (scores (N, H/8 - 1, W/8 - 1, 1), [the three block outputs]).
    """
    if x.shape[-1] != self.input_channels:
      raise ValueError(f"dcf_patch expects {self.input_channels} channels (images only: set "
                       f"losses.d_input_mask=False), got {x.shape}")
    if self.value_range not in VALUE_RANGES:
      raise ValueError(f"config field discriminator.value_range={self.value_range!r} is not "
                       f"accepted; accepted: {', '.join(VALUE_RANGES)}")
    x = x.astype(jnp.float32)
    if not self.model_space:
      x = to_model_space(x, self.value_range)
    if self.dtype is not None:
      x = x.astype(self.dtype)
    feats = []
    for j, (idx, mult) in enumerate(((0, 1), (2, 2), (5, 4))):
      conv = Conv(self.filters * mult, 4, strides=2, padding=1, dtype=self.dtype)
      x = SpectralNorm(conv, name=f"model_{idx}")(x, update_stats=train)
      if j > 0:
        x = instance_norm(x)
      x = nn.leaky_relu(x, 0.2)
      feats.append(x)
    logits = Conv(1, 4, padding=1, dtype=self.dtype, name="model_8")(x)
    return logits.astype(jnp.float32), [f.astype(jnp.float32) for f in feats]
