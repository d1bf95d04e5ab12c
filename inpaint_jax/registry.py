"""Name -> object registries, so configs pick parts by name.

One registry per kind of part (generators, discriminators, loss terms, data
sources, mask generators, augmentations, frozen backbones, weight converters).
A module registers its parts at import time with the `register` decorator; the
trainer only ever looks them up by the name in the config, so adding a model
family or a loss variant never touches the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry:
  """A mapping from names to callables with helpful errors."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, Any] = {}

  def register(self, name: str) -> Callable[[Any], Any]:
    """Decorator registering `obj` under `name`; a duplicate name is an error."""

    def deco(obj):
      if name in self._items and self._items[name] is not obj:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._items[name] = obj
      return obj

    return deco

  def get(self, name: str, field: str | None = None) -> Any:
    """Returns the object registered under `name`.

    Args:
      name: the registered name.
      field: the config field the name came from, used in the error message.

    Raises:
      ValueError: naming the field, the unknown value and the accepted names.
    """
    if name not in self._items:
      where = f"config field {field}: " if field else ""
      raise ValueError(
          f"{where}unknown {self.kind} {name!r}; accepted: {', '.join(sorted(self._items))}")
    return self._items[name]

  def names(self) -> list[str]:
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items


GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
LOSSES = Registry("loss term")
DATA_SOURCES = Registry("data source")
MASK_GENERATORS = Registry("mask generator")
AUGMENTATIONS = Registry("augmentation")
# Frozen networks that loss terms and metrics read (VGG, ResNet-50, Inception,
# ...): kind -> `build(cfg) -> frozen.Backbone`, see `inpaint_jax.frozen`.
BACKBONES = Registry("backbone")
# PyTorch checkpoint -> model directory, for `python -m inpaint_jax.convert NAME`.
CONVERTERS = Registry("converter")
# How each generator runs at inference (`python -m inpaint_jax.inpaint`, export), keyed by
# `generator.name`: `build(config) -> inference.Adapter`, see `inpaint_jax.adapters`.
INPAINTERS = Registry("inference adapter")
