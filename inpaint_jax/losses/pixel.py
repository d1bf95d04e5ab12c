"""Pixel-space reconstruction losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inpaint_jax.losses.recipe import LossInputs
from inpaint_jax.registry import LOSSES


@LOSSES.register("masked_l1")
def masked_l1(inputs: LossInputs, weight_known: float = 1.0,
              weight_missing: float = 1.0) -> jax.Array:
  """LaMa's `masked_l1_loss` on the raw prediction.

  Per-pixel |pred - image| weighted by `mask * weight_missing + (1 - mask) *
  weight_known`, averaged over all N*H*W*3 elements (LaMa: known 10, missing 0,
  so only known pixels are supervised).
  """
  weights = inputs.mask * weight_missing + (1.0 - inputs.mask) * weight_known
  return jnp.mean(weights * jnp.abs(inputs.pred - inputs.image))


@LOSSES.register("l1")
def l1(inputs: LossInputs) -> jax.Array:
  """Plain mean absolute error between prediction and image."""
  return jnp.mean(jnp.abs(inputs.pred - inputs.image))
