"""The one explicit train state of an inpainting run."""

from __future__ import annotations

from typing import Any

import flax
import jax

PyTree = Any


@flax.struct.dataclass
class NetState:
  """One trained network.

  Attributes:
    params: its `params` collection.
    collections: its other Flax collections (`batch_stats` for BatchNorm
      running statistics, `spectral` for spectral-norm u/v), possibly empty.
    opt_state: its optax state.
  """

  params: PyTree
  collections: PyTree
  opt_state: PyTree

  @property
  def variables(self) -> dict[str, PyTree]:
    """{"params": ..., **collections}, ready for `module.apply`."""
    return {"params": self.params, **self.collections}


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly; saved whole in checkpoints.

  Frozen loss / metric backbones are not part of it: they are loaded from
  their files at start-up and passed to the step as an argument.

  Attributes:
    step: int32 scalar, the number of finished iterations (one G update and the
      D updates that the schedule puts in the same iteration).
    nets: network name -> NetState; "g" always, "d" when the recipe is
      adversarial.
    ema_params: exponential moving average of the generator's params, or an
      empty dict when `train.ema_decay` is 0.
    rng: the run's base PRNG key (uint32[2]); each step folds in its index.
  """

  step: jax.Array
  nets: dict[str, NetState]
  ema_params: PyTree
  rng: jax.Array


def split_variables(variables: dict[str, PyTree]) -> tuple[PyTree, dict[str, PyTree]]:
  """Splits Flax variables into (params, {other collection: value})."""
  variables = dict(variables)
  params = variables.pop("params", {})
  return params, variables
