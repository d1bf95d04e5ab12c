"""Modes of `inpaint_jax.main` other than training."""

from __future__ import annotations

import functools

import jax
import ml_collections
from clu import parameter_overview

from inpaint_jax import system as system_lib


def summary(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Prints parameter tables and `generator_params: N` / `discriminator_params: N`.

  Shapes come from `jax.eval_shape`, so nothing is allocated or computed and no
  frozen backbone weights are read (the big-lama summary takes about a second).
  Without a discriminator, `discriminator_params: 0`.

  Returns:
    {"generator_params": N, "discriminator_params": N}.
  """
  system = system_lib.build(config)
  state = jax.eval_shape(functools.partial(system_lib.init_state, system),
                         jax.random.PRNGKey(0))
  titles = {"g": "Generator", "d": "Discriminator"}
  for name, net in state.nets.items():
    print(f"{titles.get(name, name)} ({type(system.nets[name]).__name__}):")
    print(parameter_overview.get_parameter_overview(net.params, include_stats=False))
  if not system.has_discriminator:
    print("Discriminator: none")
  counts = system_lib.param_counts(state)
  for name, n in counts.items():
    print(f"{name}: {n}")
  return counts
