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
    outputs: the generator's full output dict: `pred` (N, H, W, 3) and any
      extras the family returns (`scales`, `coarse`, ...). In the D step they
      are the detached outputs of the generator pass that made the fake.
    fake: discriminator output on the image shown as fake (`fake_image`, with
      the mask channel when `losses.d_input_mask`); None without a D.
    real: discriminator output on `image`; None without a D.
    disc: the discriminator as a function of an RGB image (the mask channel is
      appended when configured), in train mode, closed over the parameters
      being differentiated (for R1 / gradient penalties); None without a D.
    fake_image: (N, H, W, 3), what D scored as fake (`losses.d_input`: the raw
      prediction or the composite), detached in the D step.
    frozen: frozen backbone name -> callable `FrozenNet` (see
      `inpaint_jax.frozen`).
    rng: a PRNG key for stochastic terms (e.g. WGAN-GP interpolation).
  """

  image: jax.Array
  mask: jax.Array
  outputs: Mapping[str, Any]
  fake: DiscOut | None = None
  real: DiscOut | None = None
  disc: Callable[[jax.Array], DiscOut] | None = None
  fake_image: jax.Array | None = None
  frozen: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  rng: jax.Array | None = None

  @property
  def pred(self) -> jax.Array:
    return self.outputs["pred"]


def needs_discriminator(fn: Callable[..., Any]) -> Callable[..., Any]:
  """Marks a loss term that reads `fake`, `real` or `disc`.

  A recipe without a discriminator refuses such a term, naming it, before
  anything is compiled.
  """
  fn.needs_discriminator = True
  return fn


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
