"""Frequency-domain losses.

FFTs run in float32 whatever the compute dtype (half-precision FFTs are not
supported everywhere and lose the small high-frequency coefficients).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inpaint_jax.losses.pixel import abs_l1, region_weight
from inpaint_jax.losses.recipe import LossInputs
from inpaint_jax.registry import LOSSES


def _patch_spectrum(x: jax.Array, patch_factor: int) -> jax.Array:
  """(N, H, W, C) -> (N, P, H/p, W/p, C) complex: 2-D DFT (ortho) of each patch.

  The image is cut into a `patch_factor` x `patch_factor` grid of patches,
  row-major, as in the official focal frequency loss.
  """
  n, h, w, c = x.shape
  p = patch_factor
  if h % p or w % p:
    raise ValueError(f"focal_frequency: patch_factor {p} must divide the size {h}x{w}")
  y = x.astype(jnp.float32).reshape(n, p, h // p, p, w // p, c)
  y = y.transpose(0, 1, 3, 2, 4, 5).reshape(n, p * p, h // p, w // p, c)
  return jnp.fft.fft2(y, axes=(2, 3), norm="ortho")


@LOSSES.register("focal_frequency")
def focal_frequency(inputs: LossInputs, alpha: float = 1.0, patch_factor: int = 1,
                    ave_spectrum: bool = False, log_matrix: bool = False,
                    batch_matrix: bool = False) -> jax.Array:
  """Focal frequency loss (Jiang et al., ICCV 2021).

  With F = DFT(pred) and T = DFT(image) per patch and channel (orthonormal),
  the spectrum weight is w = |F - T|^alpha (optionally log(1 + .)), divided by
  its maximum over each spectrum (or over the whole batch with
  `batch_matrix`), clipped to [0, 1] and detached; the loss is
  mean(w * |F - T|^2) over every frequency, channel, patch and example.

  Args:
    inputs: the loss inputs.
    alpha: the focusing exponent.
    patch_factor: cut the image into patch_factor^2 patches first.
    ave_spectrum: compare the batch-mean spectra.
    log_matrix: weight with log(1 + |F - T|^alpha).
    batch_matrix: normalise the weight by the batch maximum.

  Returns:
    A scalar.
  """
  f = _patch_spectrum(inputs.pred, patch_factor)
  t = _patch_spectrum(inputs.image, patch_factor)
  if ave_spectrum:
    f = jnp.mean(f, axis=0, keepdims=True)
    t = jnp.mean(t, axis=0, keepdims=True)
  dist2 = jnp.square(jnp.real(f - t)) + jnp.square(jnp.imag(f - t))
  w = jnp.sqrt(dist2) ** alpha
  if log_matrix:
    w = jnp.log(w + 1.0)
  peak = jnp.max(w) if batch_matrix else jnp.max(w, axis=(2, 3), keepdims=True)
  # 0 / 0 where the spectra agree exactly: the official code maps NaN to 0.
  w = jnp.where(peak > 0, w / jnp.where(peak > 0, peak, 1.0), 0.0)
  w = jax.lax.stop_gradient(jnp.clip(w, 0.0, 1.0))
  return jnp.mean(w * dist2)


@LOSSES.register("log_spectrum_l1")
def log_spectrum_l1(inputs: LossInputs, region: str = "all") -> jax.Array:
  """DCF's frequency term: mean |log(1 + |rfft2(pred)|) - log(1 + |rfft2(image)|)|.

  rfft2 over (H, W) with `norm='ortho'`, averaged over N * (H) * (W/2 + 1) * C.
  DCF adds it at weight 0.1 to its masked L1, clamped at 2 (the recipe option
  `clamp=2.0`).

  Args:
    inputs: the loss inputs.
    region: all | hole | known: the images are multiplied by that region's
      weight before the FFT (DCF: all).
  """
  w = region_weight(inputs.mask, region)
  f = jnp.fft.rfft2((inputs.pred * w).astype(jnp.float32), axes=(1, 2), norm="ortho")
  t = jnp.fft.rfft2((inputs.image * w).astype(jnp.float32), axes=(1, 2), norm="ortho")
  return jnp.mean(abs_l1(jnp.log1p(jnp.abs(f)) - jnp.log1p(jnp.abs(t))))
