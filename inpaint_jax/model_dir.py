"""Model directories: trained or converted weights, ready for inference and fine-tuning.

A model directory holds

  config.json     the full run config (ml_collections, as JSON), so `system.build`
                  rebuilds the networks exactly;
  manifest.json   {"format": "inpaint_jax.model_dir", "version": 1, "family": ...,
                  "source": {"file": ..., "sha256": ...}, "nets": {"g": {"params": N}, ...},
                  plus whatever the converter adds};
  nets/<name>/    orbax-saved Flax variables of each network ("g" always, "d" when there
                  is one): {"params": ..., "batch_stats": ..., ...}.

`load_generator` also accepts a training workdir (`checkpoints/<step>/state`): it takes the
latest checkpoint and the generator's EMA weights when the run keeps them. `init_from` is the
trainer's hook that starts a run from a model directory's weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from inpaint_jax import system as system_lib

PyTree = Any
FORMAT = "inpaint_jax.model_dir"
VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.json"
NETS = "nets"


@dataclasses.dataclass
class ModelDir:
  """A loaded model directory (or the nets of a training workdir's latest checkpoint).

  Attributes:
    config: the run config.
    variables: net name ("g", "d") -> Flax variables (host numpy arrays).
    manifest: the manifest dict ({} for a training workdir).
  """

  config: ml_collections.ConfigDict
  variables: dict[str, PyTree]
  manifest: dict[str, Any]


def sha256_of(path: str) -> str:
  """Hex sha256 of a file (read in 16 MiB chunks)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 24), b""):
      h.update(chunk)
  return h.hexdigest()


def _to_numpy(tree: PyTree) -> PyTree:
  return jax.tree.map(lambda x: np.asarray(x), tree)


def _plain(tree: PyTree) -> PyTree:
  """Nested plain dicts (orbax and flax FrozenDicts -> dict)."""
  if isinstance(tree, Mapping):
    return {str(k): _plain(v) for k, v in tree.items()}
  return tree


def save(path: str, config: ml_collections.ConfigDict | None, variables: Mapping[str, PyTree], *,
         family: str, source_file: str | None = None, source_sha256: str | None = None,
         extra_manifest: Mapping[str, Any] | None = None, overwrite: bool = False) -> None:
  """Writes a model directory.

  Args:
    path: the directory to create (its parent is created as needed).
    config: the full run config (None for a backbone: no config.json).
    variables: net name -> Flax variables; must contain "g".
    family: model family name, e.g. "lama".
    source_file: the file the weights came from (recorded in the manifest).
    source_sha256: its sha256 (computed from `source_file` when None).
    extra_manifest: more JSON-serialisable manifest entries.
    overwrite: replace an existing model directory at `path`.

  Raises:
    ValueError: `path` exists and is not an empty folder (unless `overwrite` and it is a
      model directory), or "g" is missing.
  """
  if "g" not in variables:
    raise ValueError("a model directory needs the generator's variables (net 'g')")
  path = os.path.abspath(path)
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ValueError(f"--output {path}: exists and is not a folder")
    if os.listdir(path):
      if not (overwrite and os.path.exists(os.path.join(path, MANIFEST))):
        raise ValueError(f"--output {path}: the folder is not empty; choose a new folder")
      import shutil  # pylint: disable=g-import-not-at-top
      shutil.rmtree(path)
  os.makedirs(path, exist_ok=True)
  checkpointer = ocp.PyTreeCheckpointer()
  nets = {}
  for name, tree in variables.items():
    tree = _to_numpy(_plain(tree))
    checkpointer.save(os.path.join(path, NETS, name), tree)
    nets[name] = {"params": system_lib.count_params(tree.get("params", {})),
                  "collections": sorted(k for k in tree if k != "params")}
  if source_file is not None and source_sha256 is None:
    source_sha256 = sha256_of(source_file)
  manifest = {"format": FORMAT, "version": VERSION, "family": family,
              "source": {"file": os.path.abspath(source_file) if source_file else None,
                         "sha256": source_sha256},
              "nets": nets, **dict(extra_manifest or {})}
  if config is not None:  # backbones have no run config
    with open(os.path.join(path, CONFIG), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  with open(os.path.join(path, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))


def is_model_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MANIFEST)) and os.path.isdir(os.path.join(path, NETS))


def is_workdir(path: str) -> bool:
  return os.path.isdir(os.path.join(path, "checkpoints"))


def load(path: str) -> ModelDir:
  """Reads a model directory (all its nets) or a training workdir's latest checkpoint.

  Raises:
    FileNotFoundError / ValueError: naming `path` and what a model directory holds.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--checkpoint {path}: no such file or folder")
  if is_model_dir(path):
    with open(os.path.join(path, MANIFEST)) as f:
      manifest = json.load(f)
    if manifest.get("format") != FORMAT:
      raise ValueError(f"{path}/{MANIFEST}: not an {FORMAT} manifest")
    with open(os.path.join(path, CONFIG)) as f:
      config = config_from_json(f.read())
    checkpointer = ocp.PyTreeCheckpointer()
    variables = {}
    for name in sorted(os.listdir(os.path.join(path, NETS))):
      tree = checkpointer.restore(os.path.abspath(os.path.join(path, NETS, name)))
      variables[name] = _to_numpy(_plain(tree))
    return ModelDir(config, variables, manifest)
  if is_workdir(path):
    return _load_workdir(path)
  raise ValueError(
      f"--checkpoint {path}: neither a model directory ({MANIFEST}, {CONFIG}, {NETS}/) nor a "
      f"training workdir (checkpoints/<step>/); convert published weights with "
      f"`python -m inpaint_jax.convert`")


def _load_workdir(workdir: str, use_ema: bool = True) -> ModelDir:
  """The latest checkpoint of a training run, as nets (g with EMA params when kept)."""
  from inpaint_jax.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top

  ckpt = Checkpointer(workdir, max_to_keep=1_000_000, async_save=False)
  try:
    step = ckpt.latest_step()
    if step is None:
      raise ValueError(f"--checkpoint {workdir}: the training workdir has no checkpoint yet")
    meta = ckpt.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    config_json = meta["meta"].get("config")
    if config_json is None:
      with open(os.path.join(workdir, CONFIG)) as f:
        config_json = f.read()
    config = config_from_json(config_json)
    system = system_lib.build(config)
    abstract = jax.eval_shape(lambda rng: system_lib.init_state(system, rng),
                              jax.random.PRNGKey(0))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    state, _ = ckpt.restore(step, abstract)
  finally:
    ckpt.close()
  variables = {"g": _to_numpy(system_lib.generator_variables(state, use_ema=use_ema))}
  if "d" in state.nets:
    variables["d"] = _to_numpy(state.nets["d"].variables)
  return ModelDir(config, variables, {"family": None, "source": {"file": workdir, "step": step}})


def load_generator(path: str) -> tuple[ml_collections.ConfigDict, nn.Module, PyTree]:
  """(config, generator module, its variables) from a model directory or training workdir.

  The variables are host numpy arrays: {"params": ..., "batch_stats": ...}.
  """
  md = load(path)
  system = system_lib.build(md.config)
  return md.config, system.nets["g"], md.variables["g"]


def _check_same_structure(name: str, got: PyTree, want: PyTree, path: str) -> None:
  got_flat = {jax.tree_util.keystr(k): np.shape(v)
              for k, v in jax.tree_util.tree_flatten_with_path(got)[0]}
  want_flat = {jax.tree_util.keystr(k): np.shape(v)
               for k, v in jax.tree_util.tree_flatten_with_path(want)[0]}
  bad = sorted(set(got_flat) ^ set(want_flat))
  bad += sorted(k for k in set(got_flat) & set(want_flat) if got_flat[k] != want_flat[k])
  if bad:
    shown = "; ".join(f"{k}: {got_flat.get(k, 'missing')} vs run {want_flat.get(k, 'missing')}"
                      for k in bad[:3])
    raise ValueError(
        f"config field init_from={path}: net {name!r} does not match this run's model "
        f"({len(bad)} differing variables, e.g. {shown}); use the model directory's own "
        f"config.json settings for the network")


def init_from(system: system_lib.System, state: Any, path: str) -> Any:
  """A train state whose networks start from a model directory's weights.

  Every net of the run that the model directory has ("g", and "d" when both have one) takes
  its params and collections; optimiser states are initialised afresh, the EMA (when kept)
  starts at the loaded generator params, step and rng are kept.

  Raises:
    ValueError / FileNotFoundError: bad path, or shapes that differ from the run's model.
  """
  md = load(path)
  nets = dict(state.nets)
  for name, net in state.nets.items():
    if name not in md.variables:
      continue
    loaded = dict(md.variables[name])
    params = loaded.pop("params")
    _check_same_structure(name, {"params": params, **loaded}, net.variables, path)
    params = jax.tree.map(lambda x, ref: np.asarray(x, ref.dtype), params, net.params)
    cols = jax.tree.map(lambda x, ref: np.asarray(x, ref.dtype), loaded, net.collections)
    nets[name] = net.replace(params=params, collections=cols,
                             opt_state=system.optimizers[name].init(params))
  ema = nets["g"].params if jax.tree.leaves(state.ema_params) else state.ema_params
  return state.replace(nets=nets, ema_params=ema)
