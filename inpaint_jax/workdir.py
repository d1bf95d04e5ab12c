"""What a training workdir holds: the networks that made it, and the configs that ran there.

A workdir's checkpoints restore only into the networks that saved them. `workdir.json`
records those networks when a run first starts there (its identity): the model family,
the generator and discriminator names, each network's parameter count and a hash of its
variable tree (path, shape and dtype of every array), and the image size. `check` refuses
a run whose config builds other networks with one line naming the workdir, what it holds,
what the config asks for and how to proceed. It runs before the run writes anything and
costs no compilation: the shapes come from `jax.eval_shape`. Workdirs made before
`workdir.json` existed are identified from their newest checkpoint's config.

Config changes that keep the networks (learning rates, steps, loss weights, data) are
allowed: `config.json` stays the config of the first run, and a later run whose config
differs from the one before it writes `config.<start step>.json` and logs the changed
fields (`config_changes`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections

from inpaint_jax import checkpoint
from inpaint_jax import system as system_lib
from inpaint_jax.errors import UserError
from inpaint_jax.weights import orbax_tree

IDENTITY_FILE = "workdir.json"
CONFIG_FILE = "config.json"
PyTree = Any


@dataclasses.dataclass(frozen=True)
class Identity:
  """The networks a workdir's checkpoints hold.

  Attributes:
    family: the model family (`inpaint_jax/models/<family>/`), None when unknown.
    generator: `generator.name`.
    discriminator: `discriminator.name` ("none" without one).
    image_size: `data.image_size` (recorded, not compared: most generators are fully
      convolutional, and a size that changes their shapes changes the hash).
    nets: net name ("g", "d") -> {"params": count, "hash": hex digest of its variables'
      paths, shapes and dtypes}.
  """

  family: str | None
  generator: str
  discriminator: str
  image_size: int
  nets: dict[str, dict[str, Any]]

  def same_networks(self, other: Identity) -> bool:
    return (self.generator, self.discriminator, self.nets) == (
        other.generator, other.discriminator, other.nets)

  def describe(self) -> str:
    """"lama (generator ffc_resnet, 93,555 params; discriminator nlayer, 11,289 params;
    32 px)"."""
    parts = [f"generator {self.generator}, {self.nets['g']['params']:,} params"]
    if "d" in self.nets:
      parts.append(f"discriminator {self.discriminator}, {self.nets['d']['params']:,} params")
    else:
      parts.append("no discriminator")
    parts.append(f"{self.image_size} px")
    return f"{self.family or 'a model'} ({'; '.join(parts)})"

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> Identity:
    return cls(family=data.get("family"), generator=str(data["generator"]),
               discriminator=str(data["discriminator"]), image_size=int(data["image_size"]),
               nets={str(k): dict(v) for k, v in dict(data["nets"]).items()})


def abstract_state(system: system_lib.System) -> PyTree:
  """The train state's shapes and dtypes (`jax.eval_shape`: traced, not compiled or run)."""
  return jax.eval_shape(lambda rng: system_lib.init_state(system, rng), jax.random.PRNGKey(0))


def _family(module: Any) -> str | None:
  parts = type(module).__module__.split(".")
  if parts[:2] == ["inpaint_jax", "models"] and len(parts) > 3:
    return parts[2]
  return None


def identity_of(system: system_lib.System, state: PyTree) -> Identity:
  """The identity of the networks `system` builds; `state` is its (abstract) train state."""
  nets = {}
  for name, net in state.nets.items():
    variables = {"params": net.params, "collections": net.collections}
    shapes = sorted(orbax_tree.flat_shapes(variables).items())
    digest = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(net.params))
    nets[name] = {"params": count, "hash": digest}
  config = system.config
  return Identity(family=_family(system.nets["g"]), generator=str(config.generator.name),
                  discriminator=str(config.discriminator.name),
                  image_size=int(config.data.image_size), nets=nets)


def _identity_from_config(config_json: str | Mapping[str, Any]) -> Identity | None:
  """The identity of a stored config; None when it no longer builds (renamed modules)."""
  try:
    data = json.loads(config_json) if isinstance(config_json, str) else dict(config_json)
    system = system_lib.build(ml_collections.ConfigDict(data))
    return identity_of(system, abstract_state(system))
  except Exception:  # pylint: disable=broad-except
    return None


def read_identity(workdir: str) -> tuple[Identity | None, str]:
  """(what `workdir` holds, where that was read), or (None, "") for a new workdir.

  Raises:
    UserError: `workdir.json` is unreadable (named).
  """
  path = os.path.join(workdir, IDENTITY_FILE)
  if os.path.exists(path):
    try:
      with open(path) as f:
        return Identity.from_json(json.load(f)), path
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise UserError(f"{path}: unreadable ({' '.join(str(e).split())}); restore it, or remove "
                      f"it to identify the workdir from its checkpoints") from e
  # A workdir made before workdir.json: its newest readable checkpoint config, else config.json.
  directory = os.path.join(workdir, checkpoint.LATEST_DIR)
  for step in checkpoint.step_numbers(directory):
    try:
      config_json = checkpoint.read_meta(directory, step).get("config")
    except checkpoint.BrokenCheckpoint:
      continue
    if config_json:
      found = _identity_from_config(config_json)
      if found is not None:
        return found, os.path.join(directory, str(step))
  config_path = os.path.join(workdir, CONFIG_FILE)
  if os.path.isfile(config_path):
    try:
      with open(config_path) as f:
        found = _identity_from_config(f.read())
    except OSError:
      found = None
    if found is not None:
      return found, config_path
  return None, ""


def check(workdir: str, want: Identity) -> Identity | None:
  """Refuses a run whose networks differ from those `workdir` holds; returns what it holds.

  Raises:
    UserError: one line naming the workdir, what it holds, what the config asks for and
      how to proceed.
  """
  held, _ = read_identity(workdir)
  if held is None or held.same_networks(want):
    return held
  # init_from copies every net the two have in common, so it fits when those agree.
  common = set(held.nets) & set(want.nets)
  fits = all(held.nets[n]["hash"] == want.nets[n]["hash"] for n in common)
  how = (f"add --config.init_from={workdir} to start from the weights it holds" if fits else
         f"--config.init_from={workdir} cannot start from its weights: the networks' shapes "
         f"differ")
  raise UserError(
      f"--workdir {workdir} holds a run of {held.describe()}, but this config builds "
      f"{want.describe()}; its checkpoints would not restore into these networks. Use "
      f"another --workdir for this config ({how})")


def config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON data (the form checkpoints and config files store)."""
  return json.loads(config.to_json_best_effort())


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    if not tree and prefix:
      out[prefix[:-1]] = {}
    return out
  return {prefix[:-1]: tree}


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 20
                   ) -> list[str]:
  """The fields that differ, as "field: old -> new" (at most `limit`, then a count)."""
  a, b = _flatten(old), _flatten(new)
  missing = object()
  changes = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, missing), b.get(key, missing)
    if va == vb:
      continue
    show = lambda v: "(absent)" if v is missing else json.dumps(v)[:60]
    changes.append(f"{key}: {show(va)} -> {show(vb)}")
  if len(changes) > limit:
    changes = changes[:limit] + [f"... and {len(changes) - limit} more"]
  return changes


def previous_config(workdir: str, resumed_meta: Mapping[str, Any]) -> dict[str, Any] | None:
  """The config of the run before this one: its checkpoint's, else `config.json`."""
  text = resumed_meta.get("config")
  if not text:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
      return None
    try:
      with open(path) as f:
        text = f.read()
    except OSError:
      return None
  try:
    return json.loads(text)
  except ValueError:
    return None


def record(workdir: str, config: ml_collections.ConfigDict, identity: Identity,
           start_step: int, previous: Mapping[str, Any] | None) -> str | None:
  """Writes `workdir.json` when missing, and `config.<start_step>.json` when the config
  differs from `previous`; returns the config file written, or None.

  `config.json` itself is written by the run's metric writer on a new workdir (which puts
  the config into TensorBoard too); it is never overwritten here.
  """
  path = os.path.join(workdir, IDENTITY_FILE)
  if not os.path.exists(path):
    with open(path, "w") as f:
      json.dump(identity.to_json(), f, indent=2, sort_keys=True)
  if previous is None or previous == config_dict(config):
    return None
  out = os.path.join(workdir, f"config.{start_step}.json")
  with open(out, "w") as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True, default=str)
  return out
