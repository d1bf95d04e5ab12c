"""A run's networks, optimisers and frozen backbones, built from its config.

Everything that evaluation, inference, export and benchmarks need without the
training loop: `build(config)` gives a `System` (modules, optimisers, backbone
loaders), `init_state` the train state, and `generator_variables` the weights to
predict with (the EMA ones when the run keeps an EMA). The eval pass itself is
`inference.engine.predict`.

Networks are named: "g" (the `generator` config group) always, "d" (the
`discriminator` group) unless `discriminator.name` is "none".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from inpaint_jax import (
  losses,  # noqa: F401  (registers every loss term)
  optim,
)
from inpaint_jax.backbones import frozen as frozen_lib
from inpaint_jax.models import factory
from inpaint_jax.registry import LOSSES
from inpaint_jax.state import NetState, TrainState, split_variables
from inpaint_jax.weights.tree import count_params

PyTree = Any
NO_DISCRIMINATOR = "none"
D_INPUTS = ("pred", "composite")


@dataclasses.dataclass(frozen=True)
class System:
  """The static parts of a run.

  Attributes:
    config: the run's config.
    nets: "g" and optionally "d" -> Flax module.
    optimizers: same keys -> `optim.Optimizer`.
    backbones: frozen backbone name -> `frozen.Backbone` (module + loader).
  """

  config: ml_collections.ConfigDict
  nets: dict[str, nn.Module]
  optimizers: dict[str, optim.Optimizer]
  backbones: dict[str, frozen_lib.Backbone]

  @property
  def has_discriminator(self) -> bool:
    return "d" in self.nets

  @property
  def frozen_modules(self) -> dict[str, nn.Module]:
    return {name: b.module for name, b in self.backbones.items()}

  def load_frozen(self) -> dict[str, PyTree]:
    """Reads every backbone's weights (host arrays); name -> variables."""
    return {name: b.load() for name, b in self.backbones.items()}

  # --- inputs of the discriminator ---------------------------------------------------
  def d_inputs(self, image: jax.Array, mask: jax.Array, outputs: Mapping[str, jax.Array]
               ) -> tuple[jax.Array, jax.Array]:
    """(fake image, real image) that D scores, before the optional mask channel.

    `losses.d_input` picks the fake: the raw prediction (`pred`, LaMa) or the
    composite `mask * pred + (1 - mask) * image`.
    """
    pred = outputs["pred"]
    if self.config.losses.get("d_input", "pred") == "composite":
      return mask * pred + (1.0 - mask) * image, image
    return pred, image

  def d_view(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """What D's first layer sees: x, plus the mask channel if `losses.d_input_mask`."""
    if self.config.losses.get("d_input_mask", False):
      return jnp.concatenate([x, mask.astype(x.dtype)], axis=-1)
    return x


def _check_losses(config: ml_collections.ConfigDict, has_d: bool) -> None:
  """Refuses D-based terms without a discriminator, and bad `d_input` values."""
  d_input = config.losses.get("d_input", "pred")
  if d_input not in D_INPUTS:
    raise ValueError(f"config field losses.d_input={d_input!r} is not accepted; accepted: "
                     f"{', '.join(D_INPUTS)}")
  for group in ("generator", "discriminator"):
    recipe = config.losses.get(group) or {}
    for label in recipe:
      entry = recipe[label]
      if "fn" not in entry or "weight" not in entry:
        raise ValueError(
            f"config field losses.{group}.{label} needs 'fn' and 'weight'; got {dict(entry)}")
      fn = LOSSES.get(entry["fn"], field=f"losses.{group}.{label}.fn")
      if has_d or float(entry["weight"]) == 0.0:
        continue
      if group == "discriminator" or getattr(fn, "needs_discriminator", False):
        raise ValueError(
            f"config field losses.{group}.{label}: loss term {entry['fn']!r} needs a "
            f"discriminator, but discriminator.name is {NO_DISCRIMINATOR!r}; remove the term, "
            f"set its weight to 0 or configure a discriminator")


def build(config: ml_collections.ConfigDict) -> System:
  """Builds modules, optimisers and backbone loaders (nothing is loaded or run)."""
  nets = {"g": factory.build_generator(config)}
  if config.discriminator.name != NO_DISCRIMINATOR:
    nets["d"] = factory.build_discriminator(config)
  _check_losses(config, "d" in nets)
  optimizers = {}
  for name in nets:
    if name not in config.optim:
      raise ValueError(f"config field optim.{name} is missing: every network needs an "
                       f"optimiser group (fields: {', '.join(sorted(optim.DEFAULTS))})")
    optimizers[name] = optim.make_optimizer(config.optim[name], f"optim.{name}")
  backbones = frozen_lib.build_backbones(config.get("frozen"))
  return System(config=config, nets=nets, optimizers=optimizers, backbones=backbones)


def example_inputs(config: ml_collections.ConfigDict, batch: int = 1
                   ) -> tuple[jax.Array, jax.Array]:
  """Zero (image, mask) of the training size: (batch, S, S, 3), (batch, S, S, 1)."""
  size = config.data.image_size
  return (jnp.zeros((batch, size, size, 3), jnp.float32),
          jnp.zeros((batch, size, size, 1), jnp.float32))


def _init_rngs(rng: jax.Array) -> dict[str, jax.Array]:
  params, dropout, noise = jax.random.split(rng, 3)
  return {"params": params, "dropout": dropout, "noise": noise}


def init_state(system: System, rng: jax.Array) -> TrainState:
  """Initialises every network's variables and optimiser state, and the EMA."""
  image, mask = example_inputs(system.config)
  g_rng, d_rng, run_rng = jax.random.split(rng, 3)
  nets = {}
  g_params, g_cols = split_variables(
      system.nets["g"].init(_init_rngs(g_rng), image, mask, train=False))
  nets["g"] = NetState(g_params, g_cols, system.optimizers["g"].init(g_params))
  if system.has_discriminator:
    d_params, d_cols = split_variables(
        system.nets["d"].init(_init_rngs(d_rng), system.d_view(image, mask), train=False))
    nets["d"] = NetState(d_params, d_cols, system.optimizers["d"].init(d_params))
  ema = g_params if ema_decay(system.config) > 0 else {}
  return TrainState(step=jnp.zeros((), jnp.int32), nets=nets, ema_params=ema, rng=run_rng)


def ema_decay(config: ml_collections.ConfigDict) -> float:
  decay = float(config.train.get("ema_decay", 0.0))
  if not 0.0 <= decay < 1.0:
    raise ValueError(f"config field train.ema_decay={decay} must be in [0, 1) (0 = off)")
  return decay


def generator_variables(state: TrainState, *, use_ema: bool = True) -> dict[str, PyTree]:
  """The generator's variables to predict with: EMA params when kept, else the live ones."""
  g = state.nets["g"]
  params = state.ema_params if (use_ema and jax.tree.leaves(state.ema_params)) else g.params
  return {"params": params, **g.collections}


def param_counts(state: TrainState) -> dict[str, int]:
  """{"generator_params": N, "discriminator_params": N (0 without D)}."""
  d = state.nets.get("d")
  return {"generator_params": count_params(state.nets["g"].params),
          "discriminator_params": count_params(d.params) if d is not None else 0}
