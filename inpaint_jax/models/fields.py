"""Module fields that configs give as lists, stored as tuples of ints.

Configs loaded from JSON give lists for sequence fields (widths, kernel sizes, levels).
A list is not hashable, and jit hashes a module passed as a static argument, so a
module with such fields stores them as tuples when it is built.
"""

from __future__ import annotations

import flax.linen as nn


def store_int_tuples(module: nn.Module, *names: str) -> None:
  """Replaces each named field of `module` by a tuple of Python ints.

  Call it from the module's `__post_init__`, before `super().__post_init__()`. The
  fields of a linen module are frozen, hence `object.__setattr__`.

  Args:
    module: the module being built.
    *names: its sequence fields (each any iterable of integers).
  """
  for name in names:
    object.__setattr__(module, name, tuple(int(v) for v in getattr(module, name)))
