"""Region normalisation (Yu et al., "Region Normalization for Image Inpainting", AAAI 2020).

Basic region normalisation (RN-B) splits the pixels by a binary mask into two regions, a
valid (known) and a hole region, and normalises each region on its own:

  for region R with indicator r (N, H, W, 1) and S = sum(r) (clamped to >= 1), per channel
  over the batch and the space (BatchNorm statistics, no running statistics, so train and
  eval compute the same thing):
    mu_R  = sum(r x) / S
    var_R = sum(r (x - mu_R)^2) / S
    xhat  = r (x - mu_R) / sqrt(var_R + eps T / S)       T = N H W
  (the reference computes this through a BatchNorm of the region padded with mu_R, scaled
  by sqrt(S / T), which adds eps to the *padded* variance: eps T / S here; we keep that.)

  y = xhat_valid (1 + gamma_valid) + r_valid beta_valid
    + xhat_hole  (1 + gamma_hole)  + r_hole  beta_hole

with gamma, beta (C,) per region, initialised at 0. The reference adds both betas to every
pixel (its beta terms are not multiplied by the region), so only their sum acts;
`shared_beta=True` reproduces that, the default gives each region its own bias as the paper
describes.

Params: `valid_gamma`, `valid_beta`, `hole_gamma`, `hole_beta`, each (C,).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def region_normalize(x: Array, region: Array, epsilon: float = 1e-5) -> Array:
  """Normalises x inside `region` with the region's statistics; 0 outside.

  Args:
    x: (N, H, W, C).
    region: (N, H, W, 1) in {0, 1} (fractional values act as weights).
    epsilon: the reference's BatchNorm epsilon (see the module docstring).

  Returns:
    (N, H, W, C) float32.
  """
  xf = x.astype(jnp.float32)
  r = region.astype(jnp.float32)
  total = x.shape[0] * x.shape[1] * x.shape[2]
  s = jnp.sum(r)
  s = jnp.where(s == 0.0, 1.0, s)
  mu = jnp.sum(r * xf, axis=(0, 1, 2)) / s
  var = jnp.sum(r * jnp.square(xf - mu), axis=(0, 1, 2)) / s
  frac = s / total
  return r * (xf - mu) * jax.lax.rsqrt(var * frac + epsilon) * jnp.sqrt(frac)


def region_stats(x: Array, region: Array) -> tuple[Array, Array]:
  """(mean (C,), biased variance (C,)) of x over the pixels of `region` (for tests)."""
  xf = x.astype(jnp.float32)
  r = region.astype(jnp.float32)
  s = jnp.maximum(jnp.sum(r), 1.0)
  mu = jnp.sum(r * xf, axis=(0, 1, 2)) / s
  return mu, jnp.sum(r * jnp.square(xf - mu), axis=(0, 1, 2)) / s


class RegionNorm(nn.Module):
  """RN-B with separate affine parameters per region (see the module docstring).

  Attributes:
    epsilon: variance epsilon (the reference's BatchNorm default 1e-5).
    shared_beta: add both betas everywhere, as the reference code does.
    dtype: output dtype (None: the input's).
  """

  epsilon: float = 1e-5
  shared_beta: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, valid: Array) -> Array:
    """x (N, H, W, C), valid (N, H, W, 1) with 1 = valid, 0 = hole -> (N, H, W, C)."""
    c = x.shape[-1]
    zeros = nn.initializers.zeros
    params = {f"{r}_{p}": self.param(f"{r}_{p}", zeros, (c,), jnp.float32)
              for r in ("valid", "hole") for p in ("gamma", "beta")}
    v = jax.lax.stop_gradient(valid.astype(jnp.float32))
    h = 1.0 - v
    y = (region_normalize(x, v, self.epsilon) * (1.0 + params["valid_gamma"])
         + region_normalize(x, h, self.epsilon) * (1.0 + params["hole_gamma"]))
    if self.shared_beta:
      y = y + params["valid_beta"] + params["hole_beta"]
    else:
      y = y + v * params["valid_beta"] + h * params["hole_beta"]
    return y.astype(self.dtype or x.dtype)
