"""Modes of `inpaint_jax.main` other than training."""

from __future__ import annotations

import functools

import jax
import ml_collections
from clu import parameter_overview

from inpaint_jax import train


def summary(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Prints parameter tables and `generator_params: N` / `discriminator_params: N`.

  Shapes come from `jax.eval_shape`, so nothing is allocated or computed (the
  big-lama summary takes about a second).

  Returns:
    {"generator_params": N, "discriminator_params": N}.
  """
  g_model, d_model, tx_g, tx_d = train.build(config)
  state = jax.eval_shape(functools.partial(train.init_state, config, g_model, d_model, tx_g,
                                           tx_d), jax.random.PRNGKey(0))
  counts = {"generator_params": train.count_params(state.g_params),
            "discriminator_params": train.count_params(state.d_params)}
  for title, params in (("Generator", state.g_params), ("Discriminator", state.d_params)):
    print(f"{title} ({type(g_model if title == 'Generator' else d_model).__name__}):")
    print(parameter_overview.get_parameter_overview(params, include_stats=False))
  for name, n in counts.items():
    print(f"{name}: {n}")
  return counts
