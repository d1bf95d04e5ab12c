"""Orbax checkpoints of the train state plus run metadata.

Each checkpoint is a step folder under `<workdir>/checkpoints` holding the whole
`TrainState` (params, optimiser states, BatchNorm / spectral-norm statistics,
RNG, step) and a JSON item with the data position and the config. Orbax writes
into a temporary folder and renames it only once complete, so a crash or kill
during a save never leaves a checkpoint that restore would pick up half-written.
All processes call `save` / `restore`; orbax coordinates them.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

LATEST_DIR = "checkpoints"
BEST_DIR = "checkpoints_best"


class Checkpointer:
  """A thin wrapper over `ocp.CheckpointManager` (async saves, keep N).

  Two kinds, in separate folders of the workdir: `checkpoints/` keeps the
  `max_to_keep` latest steps (resuming reads these), and, with `best_metric`,
  `checkpoints_best/` keeps the `max_to_keep` steps with the best value of that
  validation metric (`best_mode` "max" or "min"), saved with their metrics.
  """

  def __init__(self, workdir: str, *, max_to_keep: int, async_save: bool = True,
               best_metric: str | None = None, best_mode: str = "max"):
    self.best_metric = best_metric
    self.directory = os.path.join(os.path.abspath(workdir),
                                  BEST_DIR if best_metric else LATEST_DIR)
    best = {}
    if best_metric:
      if best_mode not in ("max", "min"):
        raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
      best = dict(best_fn=lambda metrics: float(metrics[best_metric]), best_mode=best_mode,
                  keep_checkpoints_without_metrics=False)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True,
            **best),
        item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False,
           metrics: dict[str, float] | None = None) -> bool:
    """Starts an (async) save; returns whether a save was started.

    `metrics` (required for a best-checkpoint manager) rank the checkpoint.
    """
    return self.manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                meta=ocp.args.JsonSave(meta)),
        metrics=metrics, force=force)

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restores `step` into the structure, dtypes and shardings of `target`.

    Args:
      step: a step listed by `all_steps`.
      target: a state pytree (real arrays or ShapeDtypeStructs with shardings).

    Returns:
      (state, meta).
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    out = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                      meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

  def reached_preemption(self, step: int) -> bool:
    """True on every process once JAX's preemption notifier fired (multi-host)."""
    return self.manager.reached_preemption(step)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
