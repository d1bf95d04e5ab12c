"""Device mesh and per-process data -> global arrays.

Plain data parallelism: one 'data' mesh axis over every device of every
process, the train state replicated, batches sharded on their leading axis. The
axis type is Auto: `jax.make_mesh` defaults to Explicit, under which reshapes and
slices of the batch axis need sharding annotations.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D ('data',) mesh over all devices of all processes."""
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: jax.sharding.Mesh, *, stacked: bool = False) -> NamedSharding:
  """Batch axis over 'data': axis 0, or axis 1 for stacked (k, N, ...) batches."""
  return NamedSharding(mesh, P(None, "data") if stacked else P("data"))


def check_batch_size(global_batch_size: int) -> None:
  """The global batch must split evenly over processes and devices."""
  n_dev, n_proc = jax.device_count(), jax.process_count()
  if global_batch_size % n_dev:
    raise ValueError(
        f"config field batch_size={global_batch_size} must be a multiple of the number of "
        f"devices ({n_dev}, over {n_proc} process(es)); accepted: k * {n_dev}")


def global_batch(local: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh, *,
                 stacked: bool = False) -> dict[str, jax.Array]:
  """Assembles global arrays from this process's rows of the batch.

  Args:
    local: name -> (global_batch // process_count, ...) numpy arrays holding
      this process's contiguous slice of the global batch; with `stacked`,
      (k, global_batch // process_count, ...): k batches of one iteration.
    mesh: the data mesh.
    stacked: the batch axis is axis 1.

  Returns:
    name -> (global_batch, ...) (or (k, global_batch, ...)) jax.Arrays sharded
    over 'data'.
  """
  sharding = data_sharded(mesh, stacked=stacked)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}
