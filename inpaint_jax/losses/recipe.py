"""Weighted sums of registered loss terms, chosen by the config.

A term is a pure function `fn(inputs: LossInputs, **options) -> scalar` or
`-> (scalar, {name: scalar})` registered with `@LOSSES.register(name)`. A recipe
is a mapping `label -> {fn, weight, **options}` (see `config_lib.term`). The
trainer calls `evaluate` and never knows a loss by name, so a loss variant is a
config change or a new function of a few lines plus its registration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from inpaint_jax import config_lib
from inpaint_jax.registry import LOSSES

DiscOut = tuple[jax.Array, list[jax.Array]]  # (logits (N,h,w,1), feature maps)


@dataclasses.dataclass(frozen=True)
class LossInputs:
  """Everything a loss term may read. Arrays are NHWC float32.

  Attributes:
    image: (N, H, W, 3) ground truth in [0, 1].
    mask: (N, H, W, 1) 1 = hole.
    outputs: the generator's output dict; `pred` is (N, H, W, 3).
    fake: discriminator output on the image shown as fake (the raw prediction).
    real: discriminator output on `image`.
    disc: the discriminator as a function of its input image, closed over the
      parameters being differentiated (for R1 / gradient penalties).
    rng: a PRNG key for stochastic terms (e.g. WGAN-GP interpolation).
  """

  image: jax.Array
  mask: jax.Array
  outputs: Mapping[str, jax.Array]
  fake: DiscOut | None = None
  real: DiscOut | None = None
  disc: Callable[[jax.Array], DiscOut] | None = None
  rng: jax.Array | None = None

  @property
  def pred(self) -> jax.Array:
    return self.outputs["pred"]


def evaluate(recipe: Mapping[str, Any], inputs: LossInputs,
             prefix: str = "") -> tuple[jax.Array, dict[str, jax.Array]]:
  """Sums `weight * term` over the recipe.

  Args:
    recipe: label -> {fn, weight, **options}.
    inputs: the tensors the terms read.
    prefix: prepended to metric names (e.g. "g/").

  Returns:
    (total, metrics) where metrics holds each weighted term under
    `prefix + label`, extra values a term reports under `prefix + label/name`,
    and the total under `prefix + "total"`.
  """
  total = jnp.zeros((), jnp.float32)
  metrics: dict[str, jax.Array] = {}
  for label, fn_name, weight, options in config_lib.recipe_items(recipe):
    if weight == 0.0:
      continue  # a switched-off term costs nothing (and needs no inputs)
    fn = LOSSES.get(fn_name, field=f"losses.*.{label}.fn")
    try:
      out = fn(inputs, **options)
    except TypeError as e:
      raise TypeError(f"loss term {label!r} ({fn_name}): bad options {options}: {e}") from e
    value, extra = out if isinstance(out, tuple) else (out, {})
    value = weight * value
    total = total + value
    metrics[prefix + label] = value
    for name, v in extra.items():
      metrics[f"{prefix}{label}/{name}"] = v
  metrics[prefix + "total"] = total
  return total, metrics
