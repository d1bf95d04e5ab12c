"""Losses on the ring around the hole (DCF's boundary, transition and colour terms).

The rings come from grey-scale morphology of the mask (1 = hole,
`inpaint_jax.models.morphology`). DCF clamps these terms (5, 3, 2): use the
recipe option `clamp=`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inpaint_jax.losses.pixel import abs_l1
from inpaint_jax.losses.recipe import LossInputs
from inpaint_jax.models.morphology import depthwise, dilate, erode, gaussian_kernel
from inpaint_jax.registry import LOSSES

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))


@LOSSES.register("boundary_gradient")
def boundary_gradient(inputs: LossInputs, kernel_size: int = 7,
                      decay: float = 3.0) -> jax.Array:
  """DCF's adaptive boundary loss: Sobel gradients of luminance matched on the ring.

  ring r = dilate_k(m) - erode_k(m), weight w = exp(-decay * (dilate_k(m) - m));
  gray = 0.299 R + 0.587 G + 0.114 B; (Σ|Δgx r w| + Σ|Δgy r w|) / (Σ r w + 1e-8).
  """
  m = inputs.mask
  rw = (dilate(m, kernel_size) - erode(m, kernel_size)) * jnp.exp(
      -decay * (dilate(m, kernel_size) - m))
  lum = jnp.asarray((0.299, 0.587, 0.114), inputs.pred.dtype)
  d = jnp.sum((inputs.pred - inputs.image) * lum, axis=-1, keepdims=True)
  gx = depthwise(d, jnp.asarray(_SOBEL_X))   # Sobel is linear: grad(p) - grad(t) = grad(p - t)
  gy = depthwise(d, jnp.asarray(_SOBEL_Y))
  return (jnp.sum(abs_l1(gx * rw)) + jnp.sum(abs_l1(gy * rw))) / (jnp.sum(rw) + 1e-8)


@LOSSES.register("smooth_transition")
def smooth_transition(inputs: LossInputs, kernel_size: int = 11, sigma: float = 2.5,
                      var_weight: float = 0.5) -> jax.Array:
  """DCF's smooth-transition loss: Gaussian local mean and variance matched outside the hole.

  ring r = dilate_k(m) - m; per channel mu = G * x and v = G * (x - mu)^2 (zero
  padding); mean|mu_p r - mu_t r| + var_weight * mean|v_p r - v_t r|.
  """
  r = dilate(inputs.mask, kernel_size) - inputs.mask
  g = gaussian_kernel(kernel_size, sigma)

  def stats(x):
    mu = depthwise(x, g)
    return mu, depthwise(jnp.square(x - mu), g)

  mp, vp = stats(inputs.pred)
  mt, vt = stats(inputs.image)
  return jnp.mean(abs_l1((mp - mt) * r)) + var_weight * jnp.mean(abs_l1((vp - vt) * r))


@LOSSES.register("color_consistency")
def color_consistency(inputs: LossInputs, kernel_size: int = 7) -> jax.Array:
  """DCF's colour-consistency loss: per-image, per-channel mean and std on the ring.

  ring r = dilate_k(m) - erode_k(m); n = Σ r + 1e-8; mean = Σ x r / n,
  std = sqrt(Σ (x - mean)^2 r / n + 1e-8); MSE(means) + MSE(stds) over N * C.
  """
  r = dilate(inputs.mask, kernel_size) - erode(inputs.mask, kernel_size)

  def stats(x):
    n = jnp.sum(r, axis=(1, 2)) + 1e-8                      # (N, 1)
    mean = jnp.sum(x * r, axis=(1, 2)) / n                  # (N, C)
    var = jnp.sum(jnp.square(x - mean[:, None, None]) * r, axis=(1, 2)) / n
    return mean, jnp.sqrt(var + 1e-8)

  mp, sp = stats(inputs.pred)
  mt, st = stats(inputs.image)
  return jnp.mean(jnp.square(mp - mt)) + jnp.mean(jnp.square(sp - st))
