"""Builds registered generator / discriminator modules from config groups."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from inpaint_jax.registry import DISCRIMINATORS, GENERATORS, Registry

# Attributes every linen Module has that are not model options.
_MODULE_INTERNALS = {"parent", "name"}


COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(config) -> Any:
  """The top-level `dtype` config field as a module `dtype` (None = float32, the default).

  float32 maps to None so that float32 runs build exactly the modules they always did.
  """
  name = str(config.get("dtype", "float32") or "float32")
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"config field dtype={name!r} is not accepted; accepted: "
                     f"{', '.join(COMPUTE_DTYPES)}")
  return None if name == "float32" else jnp.dtype(name)


def build_module(registry: Registry, cfg: Mapping[str, Any], field: str,
                 dtype: Any = None) -> nn.Module:
  """Instantiates `registry[cfg.name](**other fields)` with clear errors.

  Args:
    registry: GENERATORS or DISCRIMINATORS.
    cfg: a config group with `name` plus the module's constructor fields.
    field: the config path of the group (e.g. "generator"), for messages.
    dtype: computation dtype given to modules with a `dtype` attribute, unless the
      group sets one itself (None: the module's default).

  Raises:
    ValueError: unknown name, or a field the module does not accept.
  """
  cfg = dict(cfg)
  name = cfg.pop("name", None)
  if name is None:
    raise ValueError(f"config field {field}.name is missing; accepted: {registry.names()}")
  cls = registry.get(name, field=f"{field}.name")
  accepted = {f.name for f in dataclasses.fields(cls)} - _MODULE_INTERNALS
  unknown = sorted(set(cfg) - accepted)
  if unknown:
    raise ValueError(
        f"config field(s) {', '.join(f'{field}.{k}' for k in unknown)} not accepted by "
        f"{field} {name!r}; accepted: {', '.join(sorted(accepted))}")
  if dtype is not None and "dtype" in accepted and cfg.get("dtype") is None:
    cfg["dtype"] = dtype
  return cls(**cfg)


def build_generator(config) -> nn.Module:
  return build_module(GENERATORS, config.generator, "generator", compute_dtype(config))


def build_discriminator(config) -> nn.Module:
  return build_module(DISCRIMINATORS, config.discriminator, "discriminator",
                      compute_dtype(config))
