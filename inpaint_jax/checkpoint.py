"""Orbax checkpoints of the train state plus run metadata: writing them, and reading them back.

Each checkpoint is a step folder under `<workdir>/checkpoints` holding the whole
`TrainState` (params, optimiser states, BatchNorm / spectral-norm statistics,
RNG, step) in `state/` and a JSON item with the data position and the config in
`meta/metadata`. Orbax writes into a temporary folder and renames it only once
complete, so a crash or kill during a save never leaves a checkpoint that restore
would pick up half-written. All processes call `save` / `restore`; orbax coordinates them.

Reading does not go through orbax's `CheckpointManager`: `restore_newest` lists the step
folders itself and tries them newest first, so that a checkpoint that does not restore
(files truncated, deleted or never completed by a copy) is skipped with one line naming the
file, and left on disk as it is; one that holds other networks than the config builds is
refused with a sentence saying what differs (`weights.orbax_tree`), never with orbax's
own tree diff, which runs to tens of kilobytes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

from inpaint_jax.weights import orbax_tree
from inpaint_jax.weights.orbax_tree import diagnose_item, json_problem, restore_tree

LATEST_DIR = "checkpoints"
BEST_DIR = "checkpoints_best"
STATE_ITEM = "state"
META_ITEM = "meta"
META_FILE = "metadata"        # the JSON item's file inside meta/
ASIDE_SUFFIX = ".unrestorable"

# The two ways reading a checkpoint fails (see `weights.orbax_tree`).
BrokenCheckpoint = orbax_tree.BrokenCheckpoint
CheckpointMismatch = orbax_tree.CheckpointMismatch

PyTree = Any


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _KeepLatest:
  """orbax preservation policy: the `n` latest steps, and every step in `protected`.

  The protected steps are checkpoints that did not restore when the run started: orbax
  lists them like any other, so its own `max_to_keep` would count them among the latest
  and might delete them, or delete the good checkpoint just saved in their place.
  """

  n: int
  protected: set[int]   # the Checkpointer's own set: a step moved aside leaves it

  def should_preserve(self, checkpoints: Sequence[Any], *, context: Any) -> list[bool]:
    del context
    good = sorted(c.step for c in checkpoints if c.step not in self.protected)
    latest = set(good[-self.n:]) if self.n > 0 else set(good)
    return [c.step in self.protected or c.step in latest for c in checkpoints]


class Checkpointer:
  """A thin wrapper over `ocp.CheckpointManager` (async saves, keep N).

  Two kinds, in separate folders of the workdir: `checkpoints/` keeps the
  `max_to_keep` latest steps (resuming reads these), and, with `best_metric`,
  `checkpoints_best/` keeps the `max_to_keep` steps with the best value of that
  validation metric (`best_mode` "max" or "min"), saved with their metrics.

  `protected_steps` are checkpoints that did not restore (see `restore_newest`): they are
  never deleted; saving one of those steps again first moves the old folder aside to
  `<step>.unrestorable` (a name orbax does not list), with a warning.

  Creating a Checkpointer creates its folder: build it only once the run is known to start.
  """

  def __init__(self, workdir: str, *, max_to_keep: int, async_save: bool = True,
               best_metric: str | None = None, best_mode: str = "max",
               protected_steps: Iterable[int] = ()):
    self.best_metric = best_metric
    self.directory = os.path.join(os.path.abspath(workdir),
                                  BEST_DIR if best_metric else LATEST_DIR)
    self.protected = set(protected_steps)
    if best_metric:
      if best_mode not in ("max", "min"):
        raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
      keep = dict(max_to_keep=max_to_keep,
                  best_fn=lambda metrics: float(metrics[best_metric]), best_mode=best_mode,
                  keep_checkpoints_without_metrics=False)
    else:
      keep = dict(preservation_policy=_KeepLatest(int(max_to_keep), self.protected))
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            enable_async_checkpointing=async_save, create=True, **keep),
        item_names=(STATE_ITEM, META_ITEM))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False,
           metrics: dict[str, float] | None = None) -> bool:
    """Starts an (async) save; returns whether a save was started.

    `metrics` (required for a best-checkpoint manager) rank the checkpoint.
    """
    if step in self.protected:
      self._move_aside(step)
    return self.manager.save(
        step,
        args=ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardSave(state),
                                   META_ITEM: ocp.args.JsonSave(meta)}),
        metrics=metrics, force=force)

  def _move_aside(self, step: int) -> None:
    """Renames the unrestorable checkpoint of `step` so that the new one can take its name."""
    self.manager.wait_until_finished()
    source = os.path.join(self.directory, str(step))
    if jax.process_index() == 0 and os.path.isdir(source):
      target = source + ASIDE_SUFFIX
      n = 1
      while os.path.exists(target):
        n += 1
        target = f"{source}{ASIDE_SUFFIX}.{n}"
      os.rename(source, target)
      logging.warning("checkpoint step %d did not restore at start-up; moved it to %s to save "
                      "step %d again", step, target, step)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f"inpaint_jax:move_aside:{step}")
    self.protected.discard(step)
    self.manager.reload()

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restores `step` of this folder (see `restore_step`)."""
    return restore_step(self.directory, step, target)

  def reached_preemption(self, step: int) -> bool:
    """True on every process once JAX's preemption notifier fired (multi-host)."""
    return self.manager.reached_preemption(step)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------
def step_numbers(directory: str) -> list[int]:
  """The step folders of a checkpoint folder, newest first (orbax's temporary folders and
  folders moved aside are not steps)."""
  if not os.path.isdir(directory):
    return []
  steps = [int(name) for name in os.listdir(directory)
           if name.isdigit() and os.path.isdir(os.path.join(directory, name))]
  return sorted(steps, reverse=True)


def diagnose_step(step_dir: str) -> str | None:
  """The first missing or unreadable file of a training checkpoint, or None."""
  if not os.listdir(step_dir):
    return f"{step_dir}: the folder is empty"
  problem = diagnose_item(os.path.join(step_dir, STATE_ITEM))
  if problem is None:
    problem = json_problem(os.path.join(step_dir, META_ITEM, META_FILE))
  return problem


def restore_step(directory: str, step: int, target: PyTree) -> tuple[PyTree, dict[str, Any]]:
  """Restores checkpoint `step` of `directory` into the structure of `target`.

  Returns:
    (state, meta).

  Raises:
    BrokenCheckpoint / CheckpointMismatch: see `restore_tree`.
  """
  step_dir = os.path.join(directory, str(step))
  problem = diagnose_step(step_dir)
  if problem is not None:
    raise BrokenCheckpoint(problem)
  state = restore_tree(os.path.join(step_dir, STATE_ITEM), target)
  return state, read_meta(directory, step)


def read_meta(directory: str, step: int) -> dict[str, Any]:
  """The JSON item of checkpoint `step` (step, data position, config)."""
  path = os.path.join(directory, str(step), META_ITEM, META_FILE)
  problem = json_problem(path)
  if problem is not None:
    raise BrokenCheckpoint(problem)
  with open(path) as f:
    return json.load(f)


@dataclasses.dataclass
class Restored:
  """What `restore_newest` found.

  Attributes:
    step: the step restored (None: no checkpoint restores, or there is none).
    state: its state (None without a step).
    meta: its JSON item ({} without a step).
    skipped: (step, first broken file) of each newer checkpoint that did not restore.
  """

  step: int | None
  state: PyTree
  meta: dict[str, Any]
  skipped: list[tuple[int, str]]


def restore_newest(directory: str, target: PyTree,
                   on_skip: Callable[[int, str], None] | None = None) -> Restored:
  """Restores the newest checkpoint of `directory` that restores, trying newest first.

  A checkpoint that does not restore (`BrokenCheckpoint`) is skipped: `on_skip(step,
  problem)` is called and its files are left as they are. A checkpoint that holds other
  networks (`CheckpointMismatch`) is not skipped: the error propagates, as every older
  checkpoint of the folder would differ in the same way.
  """
  skipped = []
  for step in step_numbers(directory):
    try:
      state, meta = restore_step(directory, step, target)
    except BrokenCheckpoint as e:
      skipped.append((step, str(e)))
      if on_skip is not None:
        on_skip(step, str(e))
      continue
    return Restored(step, state, meta, skipped)
  return Restored(None, None, {}, skipped)
