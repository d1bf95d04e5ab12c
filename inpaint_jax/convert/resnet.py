"""CSAIL ADE20k `resnet50dilated` encoder state_dict -> `models.resnet.ResNet50Dilated` variables.

The published file is `ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth`
(a plain state_dict: `conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
`layer1.0.downsample.1.weight`, ...). A `module.` prefix (DataParallel) is
stripped. Keys the encoder does not have (e.g. a classifier) are ignored, as
LaMa loads the file with `strict=False`; a missing key or a wrong shape is an
error, since it would leave random weights in a frozen loss network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import traverse_util

from inpaint_jax.models import resnet

KIND = "ade20k_resnet50"


def _flax_path(torch_key: str) -> tuple[str, tuple[str, ...]] | None:
  """`layer1.0.downsample.1.weight` -> ("params", ("layer1_0", "downsample_1", "scale"|"kernel")).

  Returns None for buffers that have no Flax counterpart (num_batches_tracked).
  The leaf name for `weight` is decided by the caller (conv kernel or BN scale).
  """
  parts = torch_key.split(".")
  leaf = parts[-1]
  mods = parts[:-1]
  names = []
  i = 0
  while i < len(mods):
    if i + 1 < len(mods) and mods[i + 1].isdigit():
      names.append(f"{mods[i]}_{mods[i + 1]}")
      i += 2
    else:
      names.append(mods[i])
      i += 1
  if leaf == "num_batches_tracked":
    return None
  if leaf == "running_mean":
    return "batch_stats", (*names, "mean")
  if leaf == "running_var":
    return "batch_stats", (*names, "var")
  return "params", (*names, leaf)


def variables_from_torch(state_dict: Mapping[str, Any],
                         stages: Sequence[int] = resnet.STAGES) -> dict[str, Any]:
  """Flax variables {"params", "batch_stats"} of `ResNet50Dilated` from the CSAIL state_dict.

  Args:
    state_dict: name -> array (numpy or anything `np.asarray` takes).
    stages: blocks per stage (ResNet-50: 3, 4, 6, 3).

  Returns:
    {"params": ..., "batch_stats": ...} of float32 numpy arrays.

  Raises:
    ValueError: a missing key or a shape mismatch, naming the PyTorch key.
  """
  sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
  expected = {col: traverse_util.flatten_dict(tree) for col, tree in
              resnet.variable_shapes(stages).items()}
  out: dict[str, dict[tuple[str, ...], np.ndarray]] = {c: {} for c in expected}
  for key, value in sd.items():
    loc = _flax_path(key)
    if loc is None:
      continue
    col, path = loc
    v = np.asarray(value, np.float32)
    if path[-1] == "weight":
      path = path[:-1] + (("kernel",) if v.ndim == 4 else ("scale",))
      if v.ndim == 4:
        v = v.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if path not in expected.get(col, {}):
      continue  # not part of the encoder (strict=False, as LaMa loads it)
    want = tuple(expected[col][path].shape)
    if v.shape != want:
      raise ValueError(f"{KIND} weights: {key!r} has shape {np.asarray(value).shape}, "
                       f"expected {want} after conversion")
    out[col][path] = v
  for col, paths in expected.items():
    missing = [p for p in paths if p not in out[col]]
    if missing:
      names = ", ".join(".".join(p) for p in missing[:3])
      raise ValueError(f"{KIND} weights: {len(missing)} {col} entries are missing from the "
                       f"state_dict (e.g. {names}); is this the CSAIL resnet50dilated encoder "
                       f"file encoder_epoch_20.pth?")
  return {col: traverse_util.unflatten_dict(tree) for col, tree in out.items()}


def variables_to_torch(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The inverse of `variables_from_torch` (for tests and exports); no num_batches_tracked."""
  sd = {}
  for tree in variables.values():
    for path, v in traverse_util.flatten_dict(dict(tree)).items():
      mods = []
      for name in path[:-1]:
        head, _, tail = name.rpartition("_")
        mods += [head, tail] if tail.isdigit() and head else [name]
      leaf = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
              "var": "running_var"}[path[-1]]
      v = np.asarray(v)
      if path[-1] == "kernel":
        v = v.transpose(3, 2, 0, 1)
      sd[".".join(mods + [leaf])] = v
  return sd
