"""RFR-Net generator (Li et al., "Recurrent Feature Reasoning for Image Inpainting", CVPR 2020).

A port of the official `RFRNet` (NHWC). Structure, with `ngf` = 64 in the published net:

  in_image = image * known (known = 1 - hole, as 3 channels)
  Pconv1   partial conv k7 s2 p3, 3 -> ngf, BN `bn1`, ReLU            (H/2)
  Pconv2   partial conv k=rec_ksize s1, ngf -> ngf, BN `bn20`, ReLU
  n_rec recurrences (weights and BatchNorms shared by all of them):
     Pconv21, Pconv22 partial convs k=rec_ksize (the mask grows twice), BN `bn2`,
     leaky_relu(0.01), RFR module (given channel 0 of the mask), x = x * mask
  merge    x = mean_t(x_t m_t) / (mean_t(m_t) + 1e-7) over the n_rec + 1 maps (the map
           before the loop included); the last mask is kept
  Tconv    ConvTranspose k4 s2 p1 ngf -> ngf, BN `bn3`, leaky_relu(0.01)   (H)
  tail1    partial conv k3 on cat[in_image, x] with mask cat[known, mask x2 nearest],
           leaky_relu(0.01) -> tail_ch
  tail2    bottleneck (1x1 tail_ch -> tail_ch/4, 3x3, 1x1 -> tail_ch, BN after each,
           ReLU, residual, ReLU)
  out      conv3x3 on cat[tail1, tail2] -> 3, linear (no activation)

RFR module (at H/2, widths 2 ngf, 4 ngf, 8 ngf): enc_1..3 conv3x3 s2 + BN + ReLU,
enc_4..layer_size conv3x3 dilation 2 + BN + ReLU (H/16); dec_{layer_size-1}..dec_4 conv3x3
dilation 2 on cat[h, skip] + BN + LeakyReLU(0.2); dec_3 ConvTranspose k4 s2 p1 (H/8) + BN
+ LeakyReLU(0.2), then knowledge-consistent attention (KCA) and a 1x1 combiner (with bias)
on cat[attended, h]; dec_2, dec_1 ConvTranspose on cat[h, skip] back to H/2.

KCA: keys = values = (f + 1e-7) / ||f + 1e-7|| per position, queries the raw features;
scores summed over the 3x3 query neighbourhood (zero padded), softmax over all keys (no
temperature); from the second recurrence on, blended with the previous recurrence's map
a = (a_prev m_prev + a (|r| + 1e-7)) / (m_prev + |r| + 1e-7), with m_prev the previous
mask at H/8 (PyTorch's nearest resize: pixel 4i of the H/2 mask) and r a learned scalar.

Partial convolutions are `models.partial_conv.PartialConv` (multi-channel masks, no bias).
No convolution has a bias except the combiner. BatchNorm is `models.norm.BatchNorm`
(PyTorch semantics: each of the n_rec calls of a shared BN normalises with its own batch
statistics and updates the running statistics in turn).

Published networks: `rec_ksize=7` 31,224,065 parameters; the official "smaller hole"
variant `rec_ksize=5` 30,929,153. H and W must be multiples of 16.

Conventions: the module takes the project's convention (image RGB in [0, 1], mask
(N, H, W, 1) with 1 = hole) and builds RFR-Net's (3-channel mask, 1 = known) inside.
`pred` is the raw network output (linear, not clipped, not composited).

Reuse as a sub-module (e.g. the coarse branch of a larger generator): build
`RFRNet(..., return_features=True)` and call it as usual; the output dict then also holds
`features`, the coarse result's feature maps at each scale (all NHWC, float32 unless
`dtype` says otherwise):

  "h1":  (N, H, W, 2 tail_ch)        input of the `out` conv (cat[tail1, tail2])
  "h2":  (N, H/2, W/2, ngf)          merged recurrence features
  "h4":  (N, H/4, W/4, 4 ngf)        dec_2 output of the last recurrence
  "h8":  (N, H/8, W/8, 8 ngf)        attention-combiner output of the last recurrence
  "h16": (N, H/16, W/16, 8 ngf)      dec_4 output of the last recurrence
  and "mask2": (N, H/2, W/2, 1), the final recurrence mask (1 = filled/known).

`feature_channels(ngf, tail_ch)` gives those channel counts without building the net.

Variables: the official module names (`Pconv1`, `bn1`, `Pconv2`, `bn20`, `Tconv`, `bn3`,
`tail1`, `tail2`, `out`), with the shared recurrence (`Pconv21`, `Pconv22`, `bn2`,
`RFRModule`) under `rec`: the n_rec recurrences are one `nn.scan` body (compiled once),
weights broadcast and BatchNorm statistics carried from step to step.
`inpaint_jax.convert.rfr` maps them to and from the official state_dict.

With `mutable=["intermediates"]` the module also sows, under `intermediates`:
`rec_feats` = ((1, N, H/2, W/2, ngf) the map before the loop, (n_rec, N, ...) the map after
each recurrence), `rec_masks` likewise (channel 0 of the masks), and
`rec/RFRModule/att/att/attn` = ((n_rec, N, L, h, w),) the blended attention map of each
recurrence at H/8, L = h * w keys in row-major order.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from inpaint_jax.models.layers import Conv, ConvTranspose, loop_conv_grads, loops_unrolled
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.models.partial_conv import PartialConv
from inpaint_jax.registry import GENERATORS

Array = jax.Array

KCA_EPS = 1e-7       # added to the keys before their norm, and to |r| in the blend
MERGE_EPS = 1e-7     # in the denominator of the feature merge
TOP_SLOPE = 0.01     # F.leaky_relu's default slope (top level)
DEC_SLOPE = 0.2      # nn.LeakyReLU(0.2) inside the RFR module
SIZE_MULTIPLE = 16


def feature_channels(ngf: int = 64, tail_ch: int = 32) -> dict[str, int]:
  """Channels of each entry of `outputs["features"]` (see the module docstring)."""
  return {"h1": 2 * tail_ch, "h2": ngf, "h4": 4 * ngf, "h8": 8 * ngf, "h16": 8 * ngf}


def mask_to_attention(mask: Array, factor: int = 4) -> Array:
  """PyTorch `F.interpolate(mode='nearest')` by 1/factor: pixel factor*i of each cell."""
  return mask[:, ::factor, ::factor]


class KnowledgeConsistentAttention(nn.Module):
  """KCA with patch size 1 and 3x3 score propagation. Param `ratio` (1,), init 1."""

  propagate_size: int = 3

  @nn.compact
  def __call__(self, f: Array, mask: Array, prev: tuple[Array, Array, Array] | None
               ) -> tuple[Array, tuple[Array, Array]]:
    """Attends over every position of f.

    Scores are laid out (N, h, w, L), the L keys on the minor axis, so the softmax and
    its gradient reduce along contiguous rows (the (N, L, h, w) layout reduced over a
    middle axis: 15 ms per recurrence at 256 px in a profile of the train step) and both
    products are plain batched matrix products.

    Args:
      f: (N, h, w, C) features (queries; keys and values after normalisation).
      mask: (N, h, w, 1) this recurrence's mask at this resolution (1 = known).
      prev: (a_prev (N, h, w, L), m_prev (N, h, w, 1), first: bool scalar) from the
        previous recurrence; no blend when `first` is true or prev is None.

    Returns:
      (y (N, h, w, C), (a (N, h, w, L), m (N, h, w, 1))): the attended features and the
      state the next recurrence blends with. L = h * w keys, index j = y * w + x.
    """
    ratio = self.param("ratio", nn.initializers.ones, (1,), jnp.float32)
    n, h, w, c = f.shape
    cdt = jnp.promote_types(f.dtype, jnp.float32)
    q = f.astype(cdt).reshape(n, h * w, c)
    k = q + KCA_EPS
    k = k / jnp.sqrt(jnp.sum(k * k, axis=-1, keepdims=True))
    s = jnp.einsum("npc,nlc->npl", q, k).reshape(n, h, w, h * w)
    p = self.propagate_size
    if p != 1:
      # avg_pool2d(p, 1, p // 2) * p * p with count_include_pad: a zero-padded box sum
      # over the query's neighbourhood.
      s = lax.reduce_window(s, 0.0, lax.add, (1, p, p, 1), (1, 1, 1, 1),
                            ((0, 0), (p // 2, p // 2), (p // 2, p // 2), (0, 0)))
    a = jax.nn.softmax(s, axis=-1)
    r = jnp.abs(ratio.astype(cdt)) + KCA_EPS
    if prev is not None:
      a_prev, m_prev, first = prev
      blended = (a_prev * m_prev + a * r) / (m_prev + r)
      # The first recurrence does not blend (the official state is reset per forward).
      a = jnp.where(first, a, blended)
    # Sown in the official layout (N, L, h, w): only computed when intermediates are kept.
    self.sow("intermediates", "attn", jnp.moveaxis(a, -1, 1))
    y = jnp.einsum("npl,nlc->npc", a.reshape(n, h * w, h * w), k).reshape(n, h, w, c)
    return y.astype(f.dtype), (a, mask.astype(cdt))


class AttentionModule(nn.Module):
  """KCA (`att`) followed by the 1x1 `combiner` (with bias) on cat[attended, f]."""

  channels: int
  dtype: Any = None

  @nn.compact
  def __call__(self, f, mask, prev):
    y, state = KnowledgeConsistentAttention(name="att")(f, mask, prev)
    out = Conv(self.channels, 1, use_bias=True, dtype=self.dtype, name="combiner")(
        jnp.concatenate([y, f], axis=-1))
    return out, state


class RFRModule(nn.Module):
  """The recurrent feature reasoning U-Net (official `RFRModule`), applied at H/2.

  Submodules `enc_i_0` (conv) / `enc_i_1` (BN), `dec_i_0` / `dec_i_1`, `att`: the
  official `enc_i.0`, `enc_i.1`, ... keys with the dots of the Sequential index replaced.
  """

  in_channel: int
  layer_size: int = 6
  dtype: Any = None

  def _bn(self, x, name, train):
    return BatchNorm(dtype=self.dtype, name=name)(x, train=train)

  @nn.compact
  def __call__(self, x: Array, mask: Array, prev, *, train: bool):
    """One recurrence's pass.

    Args:
      x: (N, h, w, in_channel) at H/2.
      mask: (N, h, w, 1) at H/2, 1 = known.
      prev: the attention state of the previous recurrence (or None).
      train: BatchNorm mode.

    Returns:
      (out (N, h, w, in_channel), attention state, {"h4", "h8", "h16"} decoder features).
    """
    c = self.in_channel
    widths = [c, 2 * c, 4 * c] + [8 * c] * (self.layer_size - 2)
    hs = [x]
    for i in range(1, self.layer_size + 1):
      if i <= 3:
        h = Conv(widths[i], 3, strides=2, padding=1, use_bias=False, dtype=self.dtype,
                 name=f"enc_{i}_0")(hs[-1])
      else:
        h = Conv(widths[i], 3, padding=2, kernel_dilation=2, use_bias=False, dtype=self.dtype,
                 name=f"enc_{i}_0")(hs[-1])
      hs.append(nn.relu(self._bn(h, f"enc_{i}_1", train)))
    h = hs[-1]
    feats = {}
    state = None
    for i in range(self.layer_size - 1, 0, -1):
      h = jnp.concatenate([h, hs[i].astype(h.dtype)], axis=-1)
      if i >= 4:
        h = Conv(widths[i], 3, padding=2, kernel_dilation=2, use_bias=False, dtype=self.dtype,
                 name=f"dec_{i}_0")(h)
      else:
        h = ConvTranspose(widths[i] if i > 1 else c, 4, strides=2, padding=1,
                          use_bias=False, dtype=self.dtype, name=f"dec_{i}_0")(h)
      h = nn.leaky_relu(self._bn(h, f"dec_{i}_1", train), DEC_SLOPE)
      if i == 4:
        feats["h16"] = h
      if i == 3:
        h, state = AttentionModule(h.shape[-1], dtype=self.dtype, name="att")(
            h, mask_to_attention(mask), prev)
        feats["h8"] = h
      if i == 2:
        feats["h4"] = h
    return h, state, feats


class Bottleneck(nn.Module):
  """torchvision-style bottleneck without downsampling (official `Bottleneck`)."""

  planes: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    def bn(y, name):
      return BatchNorm(dtype=self.dtype, name=name)(y, train=train)

    out = nn.relu(bn(Conv(self.planes, 1, use_bias=False, dtype=self.dtype, name="conv1")(x),
                     "bn1"))
    out = nn.relu(bn(Conv(self.planes, 3, padding=1, use_bias=False, dtype=self.dtype,
                          name="conv2")(out), "bn2"))
    out = bn(Conv(4 * self.planes, 1, use_bias=False, dtype=self.dtype, name="conv3")(out),
             "bn3")
    return nn.relu(out + x.astype(out.dtype))


class Recurrence(nn.Module):
  """One recurrence: Pconv21, Pconv22, `bn2`, leaky_relu, RFR module, x * mask.

  Scanned by `RFRNet` (weights broadcast, BatchNorm statistics carried). Carry:
  (x (N, h, w, ngf), mask (N, h, w, ngf), a_prev (N, h/4, w/4, L), m_prev
  (N, h/4, w/4, 1), first: the attention blends with the previous step unless first).
  """

  ngf: int
  rec_ksize: int
  layer_size: int
  return_features: bool
  train: bool
  dtype: Any = None

  @nn.compact
  def __call__(self, carry, _):
    # This body is a while loop once differentiated: see `layers.loop_conv_grads`.
    with loop_conv_grads():
      return self._step(carry)

  def _step(self, carry):
    train = self.train
    x, m, a_prev, m_prev, first = carry
    pconv = functools.partial(PartialConv, self.ngf, self.rec_ksize, padding=self.rec_ksize // 2,
                              use_bias=False, multi_channel=True, dtype=self.dtype)
    mdt = m.dtype
    x, m = pconv(name="Pconv21")(x, m)
    x, m = pconv(name="Pconv22")(x, m.astype(mdt))
    m = m.astype(mdt)
    x = nn.leaky_relu(BatchNorm(dtype=self.dtype, name="bn2")(x, train=train), TOP_SLOPE)
    x, (a, m_att), feats = RFRModule(self.ngf, self.layer_size, dtype=self.dtype,
                                     name="RFRModule")(x, m[..., :1], (a_prev, m_prev, first),
                                                       train=train)
    x = x * m.astype(x.dtype)
    ys = (x, m, feats if self.return_features else {})
    return (x, m, a, m_att, jnp.zeros((), bool)), ys


@GENERATORS.register("rfr")
class RFRNet(nn.Module):
  """RFR-Net generator; see the module docstring.

  Attributes:
    ngf: width at H/2 (published 64); the RFR module runs at 2, 4 and 8 times it.
    rec_ksize: kernel size of Pconv2 / Pconv21 / Pconv22 (7 published; 5 for the
      official "smaller hole" variant).
    n_rec: recurrences (6 published; not visible in a checkpoint).
    tail_ch: tail1 output channels (32 published; the bottleneck has tail_ch / 4
      planes).
    layer_size: RFR-module encoder depth (6 published; >= 4).
    return_features: also return `features` (the multi-scale features for reuse).
    dtype: computation dtype (None = float32); masks and attention stay in float32.
  """

  ngf: int = 64
  rec_ksize: int = 7
  n_rec: int = 6
  tail_ch: int = 32
  layer_size: int = 6
  return_features: bool = False
  dtype: Any = None

  def _validate(self) -> None:
    if self.rec_ksize < 1 or self.rec_ksize % 2 == 0:
      raise ValueError(f"RFR-Net: rec_ksize must be odd and positive, got {self.rec_ksize}")
    if self.n_rec < 1:
      raise ValueError(f"RFR-Net: n_rec must be >= 1, got {self.n_rec}")
    if self.layer_size < 4:
      raise ValueError(f"RFR-Net: layer_size must be >= 4, got {self.layer_size}")
    if self.tail_ch % 4 or self.tail_ch < 4:
      raise ValueError(f"RFR-Net: tail_ch must be a positive multiple of 4, got "
                       f"{self.tail_ch}")
    if self.ngf < 1:
      raise ValueError(f"RFR-Net: ngf must be >= 1, got {self.ngf}")

  def _pconv(self, features: int, k: int, stride: int, name: str) -> PartialConv:
    return PartialConv(features, k, strides=stride, padding=k // 2, use_bias=False,
                       multi_channel=True, dtype=self.dtype, name=name)

  def _bn(self, x, name, train):
    return BatchNorm(dtype=self.dtype, name=name)(x, train=train)

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Any]:
    """Inpaints a batch.

    Args:
      image: (N, H, W, 3) in [0, 1] (hole content is ignored).
      mask: (N, H, W, 1) or (N, H, W, 3), 1 = hole (the project's convention).
      train: BatchNorm in train mode (pass `mutable=['batch_stats']`; without it the
        BatchNorms are frozen) or eval mode.

    Returns:
      {"pred": (N, H, W, 3) the raw output} plus, with `return_features`, "features"
      (see the module docstring).

    Raises:
      ValueError: bad shapes, H or W not a multiple of 16, or bad options.
    """
    self._validate()
    if image.ndim != 4 or image.shape[-1] != 3 or mask.shape[:3] != image.shape[:3] or (
        mask.shape[-1] not in (1, 3)):
      raise ValueError(f"RFR-Net expects image (N,H,W,3) and mask (N,H,W,1 or 3), got "
                       f"{image.shape} and {mask.shape}")
    height, width = image.shape[1:3]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
      raise ValueError(f"RFR-Net needs H and W to be multiples of {SIZE_MULTIPLE}, got "
                       f"{height}x{width}; pad the input (the inference adapter does)")
    mdt = jnp.promote_types(image.dtype, jnp.float32)
    known = jnp.broadcast_to(1.0 - mask.astype(mdt), image.shape[:3] + (3,))
    in_image = image.astype(mdt) * known
    if self.dtype is not None:
      in_image = in_image.astype(self.dtype)
    ngf, k = self.ngf, self.rec_ksize

    x, m = self._pconv(ngf, 7, 2, "Pconv1")(in_image, known)
    x = nn.relu(self._bn(x, "bn1", train))
    x, m = self._pconv(ngf, k, 1, "Pconv2")(x, m)
    x = nn.relu(self._bn(x, "bn20", train))
    m = m.astype(mdt)
    masks = [m]
    self.sow("intermediates", "rec_feats", x[None])
    self.sow("intermediates", "rec_masks", m[None, ..., :1])
    # The recurrences share weights: one scanned body (compiled once, not n_rec times).
    # BatchNorm statistics are carried, so each step updates them in turn as PyTorch does.
    h8 = (x.shape[1] // 4, x.shape[2] // 4)
    n_keys = h8[0] * h8[1]
    cdt = jnp.promote_types(x.dtype, jnp.float32)
    carry = (x, m, jnp.zeros((x.shape[0],) + h8 + (n_keys,), cdt),
             jnp.zeros((x.shape[0],) + h8 + (1,), cdt), jnp.ones((), bool))
    # Statistics that are not updated (init, eval, frozen BN) are broadcast like params.
    updating = self.is_mutable_collection("batch_stats") and not self.is_initializing()
    if loops_unrolled() and not updating:
      # The same module (variables under `rec`, as the scan's) called n_rec times in a
      # Python loop, for graph converters that cannot take `nn.scan` (`unrolled_loops`).
      rec = Recurrence(ngf, k, self.layer_size, self.return_features, train, dtype=self.dtype,
                       name="rec")
      steps = []
      for _ in range(self.n_rec):
        carry, y = rec(carry, None)
        steps.append(y)
      xs, ms, rec_feats = jax.tree.map(lambda *a: jnp.stack(a), *steps)
    else:
      scan = nn.scan(Recurrence,
                     variable_broadcast="params" if updating else ["params", "batch_stats"],
                     variable_carry="batch_stats" if updating else (),
                     variable_axes={"intermediates": 0}, split_rngs={"params": False},
                     length=self.n_rec)
      _, (xs, ms, rec_feats) = scan(ngf, k, self.layer_size, self.return_features, train,
                                    dtype=self.dtype, name="rec")(carry, None)
    m = ms[-1]
    self.sow("intermediates", "rec_feats", xs)
    self.sow("intermediates", "rec_masks", ms[..., :1])
    rec_feats = {key: v[-1] for key, v in rec_feats.items()}
    fs = jnp.concatenate([x[None], xs])
    ms = jnp.concatenate([masks[0][None], ms.astype(masks[0].dtype)]).astype(fs.dtype)
    x = jnp.mean(fs * ms, axis=0) / (jnp.mean(ms, axis=0) + MERGE_EPS)
    h2 = x
    x = ConvTranspose(ngf, 4, strides=2, padding=1, use_bias=False, dtype=self.dtype,
                      name="Tconv")(x)
    x = nn.leaky_relu(self._bn(x, "bn3", train), TOP_SLOPE)
    m_up = jnp.repeat(jnp.repeat(m, 2, axis=1), 2, axis=2)
    x5 = jnp.concatenate([in_image, x.astype(in_image.dtype)], axis=-1)
    m5 = jnp.concatenate([known, m_up], axis=-1)
    x5, _ = self._pconv(self.tail_ch, 3, 1, "tail1")(x5, m5)
    x5 = nn.leaky_relu(x5, TOP_SLOPE)
    x6 = Bottleneck(self.tail_ch // 4, dtype=self.dtype, name="tail2")(x5, train=train)
    x6 = jnp.concatenate([x5, x6], axis=-1)
    out = Conv(3, 3, padding=1, use_bias=False, dtype=self.dtype, name="out")(x6)
    result: dict[str, Any] = {"pred": out.astype(jnp.float32) if self.dtype is not None
                              else out}
    if self.return_features:
      result["features"] = {"h1": x6, "h2": h2, **rec_feats, "mask2": m[..., :1]}
    return result
