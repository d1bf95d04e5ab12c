"""Frozen networks that loss terms and metrics read (VGG, ResNet-50, Inception, ...).

A backbone is registered in `registry.BACKBONES` under a kind name as a
function `build(cfg) -> Backbone`, where `cfg` is its config group without
`kind` and with `field` (the group's config path, e.g. "frozen.resnet_pl", for
error messages). The config lists the backbones a run needs:

  c.frozen = ml_collections.ConfigDict(dict(
      vgg19=dict(kind="vgg19", path="/weights/vgg19-dcbb9e9d.pth")))

The trainer builds the modules once, loads their weights once (from the local
files named in the config; nothing is downloaded), places them on the devices
and passes them to the jitted step as an argument. So the weights are neither
baked into the compiled program as constants nor saved in checkpoints. Loss
terms see them as `LossInputs.frozen[name]`, a callable `FrozenNet`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn

from inpaint_jax.registry import BACKBONES

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A frozen network: its module and a loader for its variables.

  Attributes:
    module: the Flax module.
    load: returns the module's variables ({"params": ..., maybe
      "batch_stats": ...}); reads the weights file named in the config and
      raises a ValueError naming the file and the config field if it cannot.
  """

  module: nn.Module
  load: Callable[[], PyTree]


@dataclasses.dataclass(frozen=True)
class FrozenNet:
  """A frozen module bound to its (traced) variables; call it like a function."""

  module: nn.Module
  variables: PyTree

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    return self.module.apply(self.variables, *args, **kwargs)


def build_backbones(frozen_cfg: Mapping[str, Any] | None) -> dict[str, Backbone]:
  """Builds (without loading) every backbone of the config group `frozen`."""
  out = {}
  for name, cfg in dict(frozen_cfg or {}).items():
    cfg = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    if "kind" not in cfg:
      raise ValueError(f"config field frozen.{name}.kind is missing; accepted: "
                       f"{', '.join(BACKBONES.names()) or '(none registered)'}")
    build = BACKBONES.get(cfg.pop("kind"), field=f"frozen.{name}.kind")
    cfg["field"] = f"frozen.{name}"
    out[name] = build(cfg)
  return out


def bind(modules: Mapping[str, nn.Module], variables: Mapping[str, PyTree]
         ) -> dict[str, FrozenNet]:
  """name -> FrozenNet, for `LossInputs.frozen`."""
  return {name: FrozenNet(modules[name], variables[name]) for name in modules}
