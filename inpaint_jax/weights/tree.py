"""Small helpers on trees of arrays that the converters and model directories share."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import jax
import numpy as np


def set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
  """tree[path[0]]...[path[-1]] = value, creating the intermediate dicts."""
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def unused_tensors(state_dict: Mapping[str, Any], used: Collection[str]) -> str | None:
  """A message listing the state_dict keys no parameter took, or None if all were used.

  BatchNorm's `num_batches_tracked` counters have no Flax counterpart and never count.
  """
  unknown = sorted(k for k in state_dict
                   if k not in used and not k.endswith("num_batches_tracked"))
  if not unknown:
    return None
  return (f"unexpected tensors in the state_dict: {unknown[:8]}"
          f"{' ...' if len(unknown) > 8 else ''}")


def count_params(tree: Any) -> int:
  """The number of scalars in a tree of arrays."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))
