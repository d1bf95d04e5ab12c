"""Shared helpers for the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# End-to-end runs compile many small programs; XLA's optimisation passes cost
# more than they save at these sizes.
FAST_COMPILE_ENV = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def config_module(family: str):
  """The module `configs/<family>.py` (configs are files, not a package)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  path = os.path.join(REPO, "configs", f"{family}.py")
  spec = importlib.util.spec_from_file_location(f"{family}_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def tiny_config(variant="tiny", **overrides):
  """configs/lama.py:<variant> with `overrides` applied (dotted keys)."""
  sys.path.insert(0, REPO)
  from configs import lama  # pylint: disable=g-import-not-at-top
  config = lama.get_config(variant)
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def cli_args(config_arg="configs/lama.py:tiny", **overrides) -> list[str]:
  return [f"--config={config_arg}", *(f"--config.{k}={v}" for k, v in overrides.items())]


def run_main(args, env_extra=None, timeout=600, **popen_kw):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **FAST_COMPILE_ENV, **(env_extra or {})}
  return subprocess.run([sys.executable, "-m", "inpaint_jax.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout, **popen_kw)


def checkpoint_steps(workdir) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(d):
    return []
  return sorted(int(x) for x in os.listdir(d) if x.isdigit())


def load_state(workdir, step) -> dict[str, np.ndarray]:
  """The saved TrainState of `step` as a flat {path: array} dict (no target needed)."""
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  ckptr = ocp.StandardCheckpointer()
  # Restore onto this process's first device, whatever topology saved it.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  meta = ckptr.metadata(path)
  meta = getattr(meta, "item_metadata", meta)
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta,
                        is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))
  tree = ckptr.restore(path, target)
  flat = {}

  def walk(prefix, node):
    if isinstance(node, dict):
      for k, v in node.items():
        walk(f"{prefix}/{k}" if prefix else str(k), v)
    elif isinstance(node, list | tuple):
      for i, v in enumerate(node):
        walk(f"{prefix}/{i}", v)
    else:
      flat[prefix] = np.asarray(node)

  walk("", tree)
  return flat


def read_metrics(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def load_meta(workdir, step) -> dict:
  """The JSON item saved beside the state of `step` (step, data position, config)."""
  with open(os.path.join(workdir, "checkpoints", str(step), "meta", "metadata")) as f:
    return json.load(f)
