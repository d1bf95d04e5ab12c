"""Weights into modules: a model directory or a training workdir, ready to run or fine-tune.

`load(path)` reads a model directory (`weights.model_dir`) or the latest checkpoint of a
training workdir (`checkpoints/<step>/`; the generator's EMA weights when the run keeps them);
`load_generator(path)` builds the generator module beside its weights. Inference, export,
evaluation and the trainer's `init_from` all load through here.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from inpaint_jax import checkpoint
from inpaint_jax import system as system_lib
from inpaint_jax.weights import model_dir

PyTree = Any


def load(path: str) -> model_dir.ModelDir:
  """Reads a model directory (all its nets) or a training workdir's latest checkpoint.

  Raises:
    FileNotFoundError / ValueError: naming `path`, or the file in it that is missing or
      unreadable, and what a model directory holds.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--checkpoint {path}: no such file or folder")
  if model_dir.is_model_dir(path):
    return model_dir.read(path)
  if model_dir.is_workdir(path):
    return _load_workdir(path)
  raise ValueError(
      f"--checkpoint {path}: neither a model directory ({model_dir.MANIFEST}, "
      f"{model_dir.CONFIG}, {model_dir.NETS}/) nor a training workdir (checkpoints/<step>/); "
      f"convert published weights with "
      f"`python -m inpaint_jax.convert`")


def _load_workdir(workdir: str, use_ema: bool = True) -> model_dir.ModelDir:
  """The latest checkpoint of a training run, as nets (g with EMA params when kept).

  Reads the checkpoint folder without creating or changing anything in the workdir. A
  latest checkpoint that does not restore is an error naming its file: inference does not
  quietly fall back to an older one (training does, with a warning).
  """
  directory = os.path.join(os.path.abspath(workdir), checkpoint.LATEST_DIR)
  steps = checkpoint.step_numbers(directory)
  if not steps:
    raise ValueError(f"--checkpoint {workdir}: the training workdir has no checkpoint yet")
  step = steps[0]
  try:
    meta = checkpoint.read_meta(directory, step)
    config_json = meta.get("config")
    if config_json is None:
      config_json = model_dir.read_config_text(workdir)
    config = model_dir.config_from_json(config_json)
    system = system_lib.build(config)
    abstract = jax.eval_shape(lambda rng: system_lib.init_state(system, rng),
                              jax.random.PRNGKey(0))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    state, _ = checkpoint.restore_step(directory, step, abstract)
  except (checkpoint.BrokenCheckpoint, checkpoint.CheckpointMismatch) as e:
    raise ValueError(f"--checkpoint {workdir}: the latest checkpoint (step {step}) does not "
                     f"restore: {e}") from e
  variables = {"g": model_dir.to_numpy(system_lib.generator_variables(state, use_ema=use_ema))}
  if "d" in state.nets:
    variables["d"] = model_dir.to_numpy(state.nets["d"].variables)
  return model_dir.ModelDir(config, variables,
                            {"family": None, "source": {"file": workdir, "step": step}})


def load_generator(path: str) -> tuple[ml_collections.ConfigDict, nn.Module, PyTree]:
  """(config, generator module, its variables) from a model directory or training workdir.

  The variables are host numpy arrays: {"params": ..., "batch_stats": ...}.
  """
  md = load(path)
  return md.config, generator(md), md.variables["g"]


def generator(md: model_dir.ModelDir) -> nn.Module:
  """The generator module of a loaded model directory (or workdir), built from its config."""
  return system_lib.build(md.config).nets["g"]


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
