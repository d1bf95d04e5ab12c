"""LaMa feature refinement (Kulshreshtha et al., arXiv 2206.13644), in JAX.

What LaMa's `predict.py refine=True` does (`saicinpainting/evaluation/refinement.py`):

1. If H * W > `px_budget` (1.8 M), image and mask are first resized (bilinear) to fit.
2. A pyramid of `n_scales = min(1 + round(max(0, log2(min(H, W) / min_side))), max_scales)`
   levels; each coarser level is a 5x5 Gaussian blur (sigma 1, reflect border) and a bilinear
   x0.5 (half-pixel centres, no antialiasing); masks likewise, then `> 0` (eps 1e-8).
3. The coarsest level is inpainted in one pass. At each finer level, padded to a multiple of
   8 (reflect), the generator is split into a *front* (input conv and downsampling) and a
   *rear* (residual blocks and decoder); the front's output (z_local, z_global) is optimised
   with Adam (lr 0.002) for `n_iters` (15) forward passes (14 updates) on
     mean |pred - image| over known pixels (padded frame)
     + mean |pyrdown(pred) - previous level's result| inside the x0.5 mask (bilinear, kept
       where >= 1 - eps) eroded by a 15x15 ellipse,
   and the last forward's composite is the level's result.

Memory: the backward pass through the rear is rematerialised (a `lax.scan` over the residual
blocks with a `jax.checkpoint` body, and checkpointed decoder stages), so only the block
boundaries are kept, not every activation;
the official code needs ~24 GB of GPU memory for big-lama at 1 megapixel and splits the model
over two GPUs. Deliberate differences: an empty eroded mask gives a zero multi-scale term (the
official mean over no pixels is NaN), and an image resized for the pixel budget is upscaled
back and composited at full size (the official one returns the smaller image).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from inpaint_jax.models.lama.ffc import FFC_BN_ACT, FFCResnetBlock
from inpaint_jax.models.lama.network import FFCResNetGenerator
from inpaint_jax.models.layers import Conv, ConvTranspose, pad2d
from inpaint_jax.models.norm import BatchNorm

PyTree = Any
EPS = 1e-8
MODULO = 8


# ----------------------------------------------------------------------------- the split model


@dataclasses.dataclass(frozen=True)
class LamaShape:
  """The `FFCResNetGenerator` fields that the split needs (meanings there)."""

  ngf: int
  n_downsampling: int
  n_blocks: int
  ratio_g: float
  enable_lfu: bool
  max_features: int
  output_nc: int

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> LamaShape:
    """The fields of `config.generator`; those it leaves out take the generator's defaults."""
    g = config.generator
    return cls(**{f.name: g[f.name] if f.name in g else getattr(FFCResNetGenerator, f.name)
                  for f in dataclasses.fields(cls)})


def _sub(variables: PyTree, name: str) -> PyTree:
  return {col: tree[name] for col, tree in variables.items() if name in tree}


def front(shape: LamaShape, variables: PyTree, image: jax.Array, mask: jax.Array):
  """Input conv + downsampling: (1, H, W, 3), (1, H, W, 1) -> (z_local, z_global)."""
  mf, ngf, d = shape.max_features, shape.ngf, shape.n_downsampling
  x = pad2d(jnp.concatenate([image * (1.0 - mask), mask], axis=-1), 3, "reflect")
  y = FFC_BN_ACT(min(mf, ngf), 7, 0.0, 0.0, padding=0).apply(_sub(variables, "init"), x,
                                                            train=False)
  for i in range(d):
    ratio_gout = shape.ratio_g if i == d - 1 else 0.0
    layer = FFC_BN_ACT(min(mf, ngf * 2 ** (i + 1)), 3, 0.0, ratio_gout, stride=2, padding=1,
                       padding_type="reflect")
    y = layer.apply(_sub(variables, f"down_{i}"), y, train=False)
  return y


def rear(shape: LamaShape, variables: PyTree, z, remat: bool = True) -> jax.Array:
  """Residual blocks + decoder: (z_local, z_global) -> prediction (1, H, W, output_nc)."""
  mf, ngf, d = shape.max_features, shape.ngf, shape.n_downsampling
  ckpt = jax.checkpoint if remat else (lambda f: f)
  dim = min(mf, ngf * 2 ** d)
  block = FFCResnetBlock(dim, shape.ratio_g, shape.ratio_g, enable_lfu=shape.enable_lfu,
                         padding_type="reflect")
  blocks = [_sub(variables, f"block_{i}") for i in range(shape.n_blocks)]
  if remat and blocks:
    # A scan over the stacked blocks with a checkpointed body: the backward pass keeps only
    # the block boundaries and recomputes one block at a time inside the loop. (Plain
    # `jax.checkpoint` calls in straight-line code leave XLA free to schedule the
    # recomputation early, which on CPU gave no saving at all.)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)
    body = jax.checkpoint(lambda y, v: (block.apply(v, y, train=False), None))
    z, _ = jax.lax.scan(body, tuple(z), stacked)
  else:
    for v in blocks:
      z = block.apply(v, z, train=False)
  x = jnp.concatenate([a for a in z if a is not None], axis=-1)
  for i in range(d):
    up = ConvTranspose(min(mf, int(ngf * 2 ** (d - i) / 2)), 3, strides=2, padding=1,
                       output_padding=1)

    def stage(v_up, v_bn, x, up=up):
      return nn.relu(BatchNorm().apply(v_bn, up.apply(v_up, x), train=False))

    x = ckpt(stage)(_sub(variables, f"up_{i}"), _sub(variables, f"up_bn_{i}"), x)
  out = ckpt(lambda v, x: Conv(shape.output_nc, 7).apply(v, pad2d(x, 3, "reflect")))
  return jax.nn.sigmoid(out(_sub(variables, "out"), x).astype(jnp.float32))


# ----------------------------------------------------------------------------- pyramid ops


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """PyTorch `interpolate(mode='bilinear', align_corners=False)` along one axis, (out, in)."""
  scale = n_in / n_out
  src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  frac = src - i0
  m = np.zeros((n_out, n_in), np.float64)
  m[np.arange(n_out), i0] += 1 - frac
  m[np.arange(n_out), i1] += frac
  return m.astype(np.float32)


def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """(N, H, W, C) -> (N, h, w, C), bilinear with half-pixel centres, no antialiasing."""
  mh = jnp.asarray(_bilinear_matrix(x.shape[1], size[0]))
  mw = jnp.asarray(_bilinear_matrix(x.shape[2], size[1]))
  x = jnp.einsum("hi,nijc->nhjc", mh, x, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum("wj,nhjc->nhwc", mw, x, precision=jax.lax.Precision.HIGHEST)


_G = np.exp(-(np.arange(5) - 2.0) ** 2 / 2.0)
GAUSS5 = (_G / _G.sum()).astype(np.float32)


def gaussian_blur5(x: jax.Array) -> jax.Array:
  """5x5 Gaussian, sigma 1, reflect border (kornia's `gaussian_blur2d` default), NHWC."""
  h, w = x.shape[1:3]
  p = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  p = sum(GAUSS5[k] * p[:, k:k + h] for k in range(5))
  return sum(GAUSS5[k] * p[:, :, k:k + w] for k in range(5))


def pyrdown(x: jax.Array, size: tuple[int, int] | None = None) -> jax.Array:
  size = size or (x.shape[1] // 2, x.shape[2] // 2)
  return resize_bilinear(gaussian_blur5(x), size)


def pyrdown_mask(mask: jax.Array, blur: bool = True, round_up: bool = True) -> jax.Array:
  size = (mask.shape[1] // 2, mask.shape[2] // 2)
  m = resize_bilinear(gaussian_blur5(mask) if blur else mask, size)
  return (m >= EPS if round_up else m >= 1.0 - EPS).astype(jnp.float32)


def erode(mask: np.ndarray, size: int = 15) -> np.ndarray:
  """Binary erosion by an ellipse; outside pixels never erode (kornia's geodesic border)."""
  kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
  out = cv2.erode(np.asarray(mask[0, ..., 0], np.float32), kernel,
                  borderType=cv2.BORDER_CONSTANT, borderValue=float("inf"))
  return (out >= 1.0 - EPS).astype(np.float32)[None, ..., None]


def n_scales(h: int, w: int, min_side: int, max_scales: int) -> int:
  return min(1 + int(round(max(0, np.log2(min(h, w) / min_side)))), max_scales)


def _pad_reflect(x: np.ndarray) -> np.ndarray:
  h, w = x.shape[1:3]
  ph, pw = (-h) % MODULO, (-w) % MODULO
  return np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")


# ----------------------------------------------------------------------------- refinement


def _masked_mean(x: jax.Array, weight: jax.Array) -> jax.Array:
  return jnp.sum(jnp.abs(x) * weight) / jnp.maximum(jnp.sum(weight) * x.shape[-1], 1.0)


def refinement_loss(shape, variables, z, image, mask, ref, mask_down, orig_hw, remat=True):
  """The official loss of one level; image, mask padded (1, Hp, Wp, .), ref (1, h/2, w/2, 3)."""
  pred = rear(shape, variables, z, remat)
  known = (mask < EPS).astype(jnp.float32)
  loss = _masked_mean(pred - image, known)
  h, w = orig_hw
  down = pyrdown(pred[:, :h, :w])
  return loss + _masked_mean(down - ref, mask_down)


@functools.partial(jax.jit, static_argnames=("shape", "orig_hw", "lr", "remat"))
def refine_step(shape, variables, z, opt_state, image, mask, ref, mask_down, *, orig_hw, lr,
                remat=True):
  """One Adam step on (z_local, z_global); returns (z, opt_state, loss before the step)."""
  loss, grads = jax.value_and_grad(
      lambda z: refinement_loss(shape, variables, z, image, mask, ref, mask_down, orig_hw,
                                remat))(z)
  updates, opt_state = optax.adam(lr).update(grads, opt_state, z)
  return optax.apply_updates(z, updates), opt_state, loss


_front = jax.jit(front, static_argnums=0)
_rear = jax.jit(functools.partial(rear, remat=False), static_argnums=0)


@dataclasses.dataclass
class RefineResult:
  """composite (H, W, 3); losses of the finest level's steps; known-region L1 of the finest
  level's prediction before and after refinement."""

  composite: np.ndarray
  losses: list[float]
  known_l1_before: float | None
  known_l1_after: float | None


def refine_lama_full(g_model: nn.Module, variables: PyTree, config: ml_collections.ConfigDict,
                     image: np.ndarray, mask: np.ndarray, *, n_iters: int = 15,
                     lr: float = 0.002, min_side: int = 512, max_scales: int = 3,
                     px_budget: int = 1_800_000, remat: bool = True) -> RefineResult:
  """Refined inpainting of one image: image (H, W, 3) in [0, 1], mask (H, W, 1), 1 = hole."""
  del g_model  # the split reuses the generator's variables with the same submodules
  if n_iters < 1:
    raise ValueError(f"--refine-iters {n_iters}: must be >= 1")
  shape = LamaShape.from_config(config)
  full_h, full_w = image.shape[:2]
  img = jnp.asarray(image, jnp.float32)[None]
  msk = (jnp.asarray(mask, jnp.float32)[None] > 0).astype(jnp.float32)
  h, w = full_h, full_w
  if h * w > px_budget:
    ratio = math.sqrt(px_budget / float(h * w))
    h, w = int(h * ratio), int(w * ratio)
    img = resize_bilinear(img, (h, w))
    msk = (resize_bilinear(msk, (h, w)) > EPS).astype(jnp.float32)
  images, masks = [img], [msk]
  for _ in range(n_scales(h, w, min_side, max_scales) - 1):
    images.append(pyrdown(images[-1]))
    masks.append(pyrdown_mask(masks[-1]))
  result = None
  losses: list[float] = []
  before = after = None
  for level_image, level_mask in zip(images[::-1], masks[::-1], strict=True):
    lh, lw = level_image.shape[1:3]
    image_p = jnp.asarray(_pad_reflect(np.asarray(level_image)))
    mask_p = jnp.asarray((_pad_reflect(np.asarray(level_mask)) >= EPS).astype(np.float32))
    z = _front(shape, variables, image_p, mask_p)
    if result is not None:
      known = (mask_p < EPS).astype(jnp.float32)
      before = float(_masked_mean(_rear(shape, variables, z) - image_p, known))
      mask_down = jnp.asarray(erode(np.asarray(pyrdown_mask(
          mask_p[:, :lh, :lw], blur=False, round_up=False))))
      opt_state = optax.adam(lr).init(z)
      losses = []
      for _ in range(n_iters - 1):
        z, opt_state, loss = refine_step(shape, variables, z, opt_state, image_p, mask_p,
                                         result, mask_down, orig_hw=(lh, lw), lr=lr,
                                         remat=remat)
        losses.append(float(loss))
    pred = _rear(shape, variables, z)
    if result is not None:
      after = float(_masked_mean(pred - image_p, (mask_p < EPS).astype(jnp.float32)))
    result = (mask_p * pred + (1.0 - mask_p) * image_p)[:, :lh, :lw]
  out = np.asarray(result[0])
  if (h, w) != (full_h, full_w):
    big = np.clip(cv2.resize(out, (full_w, full_h), interpolation=cv2.INTER_CUBIC), 0, 1)
    out = np.where(mask > 0, big, image).astype(np.float32)
  return RefineResult(out, losses, before, after)


def refine_lama(g_model: nn.Module, variables: PyTree, config: ml_collections.ConfigDict,
                image: np.ndarray, mask: np.ndarray, **options: Any) -> np.ndarray:
  """The inference adapter's `refine`: the composite (H, W, 3) float32."""
  if not np.any(mask):
    return np.asarray(image, np.float32)
  return refine_lama_full(g_model, variables, config, image, mask, **options).composite
