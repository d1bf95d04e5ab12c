"""The one explicit train state of a GAN inpainting run."""

from __future__ import annotations

from typing import Any

import flax
import jax

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly; saved whole in checkpoints.

  Attributes:
    step: int32 scalar, the number of finished iterations (G step + D step).
    g_params / d_params: generator / discriminator `params` collections.
    g_vars / d_vars: their other Flax collections (`batch_stats` for BatchNorm
      running statistics, `spectral` for spectral-norm u/v), possibly empty.
    g_opt_state / d_opt_state: optax states.
    rng: the run's base PRNG key (uint32[2]); each step folds in its index.
  """

  step: jax.Array
  g_params: PyTree
  g_vars: PyTree
  g_opt_state: PyTree
  d_params: PyTree
  d_vars: PyTree
  d_opt_state: PyTree
  rng: jax.Array


def split_variables(variables: dict[str, PyTree]) -> tuple[PyTree, dict[str, PyTree]]:
  """Splits Flax variables into (params, {other collection: value})."""
  variables = dict(variables)
  params = variables.pop("params", {})
  return params, variables
