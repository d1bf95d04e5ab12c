"""Model directories: trained or converted weights, ready for inference and fine-tuning.

A model directory holds

  config.json     the full run config (ml_collections, as JSON), so `system.build`
                  rebuilds the networks exactly;
  manifest.json   {"format": "inpaint_jax.model_dir", "version": 1, "family": ...,
                  "source": {"file": ..., "sha256": ...}, "nets": {"g": {"params": N}, ...},
                  plus whatever the converter adds};
  nets/<name>/    orbax-saved Flax variables of each network ("g" always, "d" when there
                  is one): {"params": ..., "batch_stats": ..., ...}.

This module reads and writes the format; `inpaint_jax.restore` turns a model directory or a
training workdir into modules and weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from inpaint_jax.weights import orbax_tree
from inpaint_jax.weights.tree import count_params

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


def to_numpy(tree: PyTree) -> PyTree:
  return jax.tree.map(lambda x: np.asarray(x), tree)


def plain(tree: PyTree) -> PyTree:
  """Nested plain dicts (orbax and flax FrozenDicts -> dict)."""
  if isinstance(tree, Mapping):
    return {str(k): plain(v) for k, v in tree.items()}
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
      shutil.rmtree(path)
  os.makedirs(path, exist_ok=True)
  checkpointer = ocp.PyTreeCheckpointer()
  nets = {}
  for name, tree in variables.items():
    tree = to_numpy(plain(tree))
    checkpointer.save(os.path.join(path, NETS, name), tree)
    nets[name] = {"params": count_params(tree.get("params", {})),
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


def _read_json(path: str) -> Any:
  """A JSON file's content; ValueError naming the file when it is missing or broken."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise ValueError(f"{path}: missing") from e
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: unreadable ({e.strerror if isinstance(e, OSError) else e})") from e
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                     f"restore the file from the model's source") from e


def read_config_text(path: str) -> str:
  """The text of `path/config.json`, checked to be JSON; ValueError naming the file."""
  _read_json(os.path.join(path, CONFIG))
  with open(os.path.join(path, CONFIG)) as f:
    return f.read()


def read(path: str) -> ModelDir:
  """Reads a model directory: its config, manifest and every net's variables (numpy).

  Raises:
    ValueError: naming the file that is missing, unreadable or not what a model
      directory holds.
  """
  manifest = _read_json(os.path.join(path, MANIFEST))
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise ValueError(f"{path}/{MANIFEST}: not an {FORMAT} manifest")
  data = _read_json(os.path.join(path, CONFIG))
  if not isinstance(data, dict):
    raise ValueError(f"{os.path.join(path, CONFIG)}: not a config (a JSON object)")
  config = ml_collections.ConfigDict(data)
  variables = {}
  for name in sorted(os.listdir(os.path.join(path, NETS))):
    tree = orbax_tree.restore_tree(os.path.join(path, NETS, name))
    variables[name] = to_numpy(plain(tree))
  if "g" not in variables:
    raise ValueError(f"{os.path.join(path, NETS, 'g')}: missing (the generator's weights)")
  return ModelDir(config, variables, manifest)
