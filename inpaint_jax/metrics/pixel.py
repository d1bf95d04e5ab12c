"""Per-image full-reference metrics: PSNR, SSIM and mean L1, batched and jit-able.

PSNR and SSIM are dm-pix's. All take NHWC float arrays with values in [0, 1] and return
one value per image, so a caller can average, bin by hole area, or rank examples.
Conventions (those of scikit-image, which the tests compare with):

* PSNR: `10 * log10(data_range^2 / MSE)`, the MSE over all pixels and channels of the
  image. Identical images give +inf.
* SSIM: see `inpaint_jax.metrics.structural` (default: scikit-image's Gaussian SSIM).
* L1: mean absolute error over the whole image, in [0, 1] units.
"""

from __future__ import annotations

import functools

import dm_pix
import jax
import jax.numpy as jnp

from inpaint_jax.metrics.structural import ssim, ssim_map


def _check(pred: jax.Array, target: jax.Array, what: str) -> None:
  if pred.ndim != 4 or pred.shape != target.shape:
    raise ValueError(f"{what} needs two (N, H, W, C) arrays of one shape, got {pred.shape} "
                     f"and {target.shape}")


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """(N,) mean squared error per image of two (N, H, W, C) arrays."""
  _check(pred, target, "mse")
  return dm_pix.mse(pred.astype(jnp.float32), target.astype(jnp.float32))


def psnr(pred: jax.Array, target: jax.Array, *, data_range: float = 1.0) -> jax.Array:
  """(N,) PSNR in dB per image of two (N, H, W, C) arrays in [0, data_range]."""
  _check(pred, target, "psnr")
  # dm-pix assumes a range of 1; scaling both images keeps the MSE ratio exact.
  scale = jnp.float32(1.0 / data_range)
  return dm_pix.psnr(pred.astype(jnp.float32) * scale, target.astype(jnp.float32) * scale)


def l1(pred: jax.Array, target: jax.Array) -> jax.Array:
  """(N,) mean absolute error per image of two (N, H, W, C) arrays."""
  _check(pred, target, "l1")
  return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)),
                  axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnames=("ssim_mode",))
def image_metrics(pred: jax.Array, target: jax.Array, *,
                  ssim_mode: str = "skimage") -> dict[str, jax.Array]:
  """PSNR, SSIM and L1 of each image pair, in one jitted call.

  Args:
    pred: (N, H, W, C) float images in [0, 1] (e.g. the composited model output).
    target: (N, H, W, C) float ground truth in [0, 1].
    ssim_mode: "skimage" (default) or "lama"; see `inpaint_jax.metrics.structural`.

  Returns:
    {"psnr": (N,), "ssim": (N,), "l1": (N,)} float32 arrays.
  """
  return {"psnr": psnr(pred, target), "ssim": ssim(pred, target, mode=ssim_mode),
          "l1": l1(pred, target)}


HOLE_METRICS = ("psnr_hole", "ssim_hole", "l1_hole")


@jax.jit
def hole_metrics(pred: jax.Array, target: jax.Array, hole: jax.Array) -> dict[str, jax.Array]:
  """PSNR, SSIM and L1 over the hole pixels only, per image.

  Whole-image scores of a composite mix the hole with known pixels that are exact; these
  measure the fill alone (the learning benchmark's curves use them).

  * PSNR: `10 * log10(1 / MSE)` with the MSE over the hole's pixels and channels.
  * SSIM: the SSIM map (Gaussian window 11, sigma 1.5, zero padded to the image size, as
    LaMa's SSIM) averaged over the hole's pixels and the channels.
  * L1: mean absolute error over the hole's pixels and channels.

  Args:
    pred: (N, H, W, C) float images in [0, 1].
    target: (N, H, W, C) float ground truth in [0, 1].
    hole: (N, H, W) or (N, H, W, 1) masks, 1 = hole. An image without a hole pixel gets
      NaN.

  Returns:
    {"psnr_hole": (N,), "ssim_hole": (N,), "l1_hole": (N,)} float32 arrays.
  """
  _check(pred, target, "hole_metrics")
  pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
  w = (hole.reshape(pred.shape[:3] + (1,)) > 0.5).astype(jnp.float32)
  count = jnp.sum(w, axis=(1, 2, 3)) * pred.shape[-1]
  mean_over_hole = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) / count
  mse = mean_over_hole((pred - target) ** 2)
  return {"psnr_hole": -10.0 * jnp.log10(mse),
          "ssim_hole": mean_over_hole(ssim_map(pred, target)),
          "l1_hole": mean_over_hole(jnp.abs(pred - target))}
