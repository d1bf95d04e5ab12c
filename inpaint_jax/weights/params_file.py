"""Converted network weights on disk: one `.npz` of '/'-joined parameter paths.

Written by the converters (`python -m inpaint_jax.convert ...`), read by the metric
networks. The file holds `__kind__` (e.g. "lpips_vgg_v0.1") so a file made for one
network is refused by another with a clear message, instead of failing on shapes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import traverse_util

_KIND = "__kind__"


def save_params(path: str | os.PathLike[str], params: Mapping[str, Any], kind: str) -> None:
  """Writes a nested dict of arrays to `path` (.npz) tagged with `kind`."""
  flat = traverse_util.flatten_dict(dict(params), sep="/")
  if os.path.dirname(os.fspath(path)):
    os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    np.savez(f, **{_KIND: np.asarray(kind)}, **{k: np.asarray(v) for k, v in flat.items()})


def load_params(path: str | os.PathLike[str], kind: str, what: str = "weights") -> dict[str, Any]:
  """Reads a file written by `save_params`; checks that it holds `kind`.

  Raises:
    ValueError: missing or unreadable file, or another kind of network (names the path).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"{what}: {path!r} does not exist; make it with `python -m "
                     f"inpaint_jax.convert` from the published PyTorch file")
  try:
    with np.load(path, allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except (OSError, ValueError) as e:
    raise ValueError(f"{what}: {path!r} is not a converted weights file (.npz): {e}") from None
  got = str(flat.pop(_KIND, "unknown"))
  if got != kind:
    raise ValueError(f"{what}: {path!r} holds {got!r} weights, expected {kind!r}")
  return traverse_util.unflatten_dict(flat, sep="/")
