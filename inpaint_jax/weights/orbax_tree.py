"""Orbax-saved trees read safely: a missing or broken file named in one line, never a traceback.

Training checkpoints (`inpaint_jax.checkpoint`) and model directories (`weights.model_dir`)
hold trees of arrays saved by orbax: a folder with `_METADATA` (the tree's paths, shapes
and dtypes, JSON) and the array data. Reading one that was truncated, half-copied or saved
by other networks fails deep inside orbax and TensorStore with tracebacks of hundreds of
lines, or with orbax's whole tree diff. Here those failures become one of two errors with
a one-line message: `BrokenCheckpoint` (names the first missing or unreadable file, or the
array that cannot be read) and `CheckpointMismatch` (says in a sentence how the saved tree
differs from the wanted one: "checkpoint has no discriminator, config has one", or the first
differing path).
"""

from __future__ import annotations

import json
import logging as pylogging
import os
import pathlib
import re
import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

TREE_METADATA = "_METADATA"   # orbax's description of a saved tree (paths, shapes, dtypes)
PyTree = Any


class BrokenCheckpoint(ValueError):
  """Saved files that do not restore; the message names the first broken file."""


class CheckpointMismatch(ValueError):
  """A saved tree that is readable, but holds other arrays than the ones wanted."""


def json_problem(path: str) -> str | None:
  """Why `path` is not a readable JSON file, or None."""
  if not os.path.isfile(path):
    return f"{path}: missing"
  try:
    with open(path) as f:
      json.load(f)
  except (OSError, ValueError) as e:
    return f"{path}: unreadable ({_short(e)})"
  return None


def diagnose_item(item_dir: str) -> str | None:
  """The first missing or unreadable file of an orbax-saved tree, as `path: what`, or None.

  Checks what can be checked without reading the arrays: the folder and orbax's tree
  description (`_METADATA`, JSON). Truncated array data shows only when it is read.
  """
  if not os.path.isdir(item_dir):
    return f"{item_dir}: missing"
  if not os.listdir(item_dir):
    return f"{item_dir}: the folder is empty"
  return json_problem(os.path.join(item_dir, TREE_METADATA))


def _key_name(entry: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def _is_array_like(x: Any) -> bool:
  return hasattr(x, "shape") and hasattr(x, "dtype")


def flat_shapes(tree: PyTree) -> dict[str, tuple[tuple[int, ...], str]]:
  """{"nets/g/params/...": (shape, dtype name)} of a tree of arrays, abstract arrays or
  orbax array metadata; the same paths whichever of these the tree holds."""
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_array_like)[0]
  return {"/".join(_key_name(e) for e in path): (tuple(int(d) for d in leaf.shape),
                                                 np.dtype(leaf.dtype).name)
          for path, leaf in leaves if _is_array_like(leaf)}


def saved_shapes(item_dir: str) -> dict[str, tuple[tuple[int, ...], str]]:
  """`flat_shapes` of an orbax-saved tree, from its `_METADATA` (no array is read)."""
  # The handler, not a Checkpointer: the latter also looks for a step-level metadata file,
  # which a tree inside a training checkpoint does not have, and warns about it.
  meta = ocp.PyTreeCheckpointHandler().metadata(pathlib.Path(os.path.abspath(item_dir)))
  return flat_shapes(getattr(meta, "item_metadata", meta))


# What a difference under a top-level part of the train state means, in words.
_PARTS = {"nets/d/": "discriminator", "nets/g/": "generator", "ema_params/": "generator EMA"}


def describe_difference(saved: Mapping[str, tuple], wanted: Mapping[str, tuple], *,
                        saved_name: str = "checkpoint", wanted_name: str = "config"
                        ) -> str | None:
  """One sentence saying how two `flat_shapes` differ, or None when they are the same.

  A whole network present on one side only is named ("checkpoint has no discriminator,
  config has one"); otherwise the first differing path and the number of differences.
  """
  if saved == wanted:
    return None
  for prefix, what in _PARTS.items():
    in_saved = any(k.startswith(prefix) for k in saved)
    in_wanted = any(k.startswith(prefix) for k in wanted)
    if in_saved != in_wanted:
      has, lacks = (saved_name, wanted_name) if in_saved else (wanted_name, saved_name)
      return f"{lacks} has no {what}, {has} has one"
  only_saved = sorted(set(saved) - set(wanted))
  only_wanted = sorted(set(wanted) - set(saved))
  differ = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
  n = len(only_saved) + len(only_wanted) + len(differ)
  if differ:
    k = differ[0]
    first = (f"{k} is {_fmt(saved[k])} in the {saved_name}, {_fmt(wanted[k])} in the "
             f"{wanted_name}")
  elif only_saved:
    first = f"{only_saved[0]} is only in the {saved_name}"
  else:
    first = f"{only_wanted[0]} is only in the {wanted_name}"
  return f"{first} ({n} differing arrays of {max(len(saved), len(wanted))})"


def _fmt(shape_dtype: tuple) -> str:
  shape, dtype = shape_dtype
  return f"{dtype}{list(shape)}"


def _short(e: BaseException, limit: int = 200) -> str:
  text = " ".join(str(e).split())
  return text if len(text) <= limit else text[:limit] + " ..."


def read_failure(e: BaseException, item_dir: str) -> str:
  """One line for an exception raised while orbax read the arrays of `item_dir`.

  TensorStore's own text is a multi-kilobyte spec dump; the array it could not read is
  the part that helps.
  """
  text = str(e)
  # The array's key inside the checkpoint: in the TensorStore spec ('path': 'nets.g...')
  # or in a TensorStore status (OUT_OF_RANGE: Error reading "nets.g...").
  arrays = [p for p in re.findall(r"'path': '([^']*)'", text) if not p.startswith("/")]
  arrays = arrays or re.findall(r'Error reading "([^"/]+)', text)
  if arrays:
    return (f"{item_dir}: array {arrays[-1].rstrip('/')} cannot be read (truncated or "
            f"corrupt data files)")
  return f"{item_dir}: cannot be read ({type(e).__name__}: {_short(e)})"


def restore_tree(item_dir: str, target: PyTree | None = None, *, what: str = "checkpoint",
                 wanted: str = "config") -> PyTree:
  """Restores an orbax-saved tree, into the structure, dtypes and shardings of `target`
  when given (else as saved, as host arrays).

  Raises:
    BrokenCheckpoint: a file is missing or unreadable (named in the message).
    CheckpointMismatch: the saved tree holds other arrays than `target` (`what` and
      `wanted` name the two sides in the message).
  """
  problem = diagnose_item(item_dir)
  if problem is not None:
    raise BrokenCheckpoint(problem)
  # Before the read: some leftovers of a failing read are printed while it still runs.
  quiet_failed_reads()
  if target is not None:
    try:
      saved = saved_shapes(item_dir)
    except Exception as e:  # pylint: disable=broad-except
      raise BrokenCheckpoint(f"{os.path.join(item_dir, TREE_METADATA)}: unreadable "
                             f"({_short(e)})") from e
    differs = describe_difference(saved, flat_shapes(target), saved_name=what,
                                  wanted_name=wanted)
    if differs is not None:
      raise CheckpointMismatch(f"{item_dir}: {differs}")
  checkpointer = ocp.StandardCheckpointer() if target is not None else ocp.PyTreeCheckpointer()
  try:
    if target is None:
      return checkpointer.restore(os.path.abspath(item_dir))
    return checkpointer.restore(os.path.abspath(item_dir),
                                jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
  except Exception as e:  # pylint: disable=broad-except
    raise BrokenCheckpoint(read_failure(e, item_dir)) from e
  finally:
    checkpointer.close()


# ------------------------------------------------------------------------------------------
# After a failed read
# ------------------------------------------------------------------------------------------
# When one array of a checkpoint cannot be read, orbax abandons the others mid-read: their
# coroutines and futures fail later, from TensorStore's threads or when they are collected,
# and Python prints each failure (hundreds of "Exception ignored in ..." tracebacks with
# TensorStore specs, "Future exception was never retrieved", "Event loop is closed"), some
# while the read is still failing, some long after the error was handled. These are the
# marks of those leftovers.
_LEFTOVER_MARKS = ("Encountered error while reading array", "Event loop is closed",
                   "_read_array_index_and_device_put", "async_deserialize",
                   ": Error reading \"", ": Error opening \"")
_quieted = False


def _is_leftover(*parts: Any) -> bool:
  text = " ".join(f"{type(p).__name__}: {p}" if isinstance(p, BaseException) else repr(p)
                  for p in parts if p is not None)
  return any(mark in text for mark in _LEFTOVER_MARKS)


class _DropLeftovers(pylogging.Filter):
  """Drops asyncio's "... exception was never retrieved" records of abandoned reads."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not (_is_leftover(exc) or any(m in record.getMessage() for m in _LEFTOVER_MARKS))


def quiet_failed_reads() -> None:
  """Silences the leftovers of abandoned orbax reads, for the rest of the process.

  Only failures carrying the marks above are dropped: any other unraisable exception or
  asyncio error is reported as before. Installed before the first read of a saved tree.
  """
  global _quieted
  if _quieted:
    return
  _quieted = True
  previous = sys.unraisablehook

  def hook(unraisable: Any) -> None:
    if _is_leftover(unraisable.exc_value, unraisable.object):
      return
    previous(unraisable)

  sys.unraisablehook = hook
  pylogging.getLogger("asyncio").addFilter(_DropLeftovers())
