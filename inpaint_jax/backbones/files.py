r"""Weights of the frozen backbones: the published PyTorch files, or converted `.npz` files.

  python -m inpaint_jax.convert ade20k_resnet50 \
      --checkpoint encoder_epoch_20.pth --output weights/resnet_pl
  python -m inpaint_jax.convert vgg19 --checkpoint vgg19-dcbb9e9d.pth \
      --output weights/vgg19

A backbone's config field `path` may name
  * the published PyTorch file itself (read without torch by `torch_file`), or
  * a converted file (`.npz`, see `params_file`) or a directory holding
    `<kind>.npz`, as written by `convert_backbone` (the command above).
Nothing is downloaded: a missing file stops the run before training with a
message naming the file, where the official code downloads it from, and the
config field to set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from inpaint_jax.weights import params_file, torch_file

# kind -> (the published file, where the official code downloads it from).
PUBLISHED = {
    "vgg16": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "vgg19": ("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    "ade20k_resnet50": (
        "ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth",
        "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/"
        "encoder_epoch_20.pth"),
}


def missing_weights(kind: str, path: str, field: str) -> ValueError:
  """The one-line error for a backbone whose weights file is not there."""
  name, url = PUBLISHED[kind]
  return ValueError(
      f"{kind} weights not found at {path or '(empty path)'!r}: this config needs {name} "
      f"(the official code downloads it from {url}); download it and set --config.{field}"
      f".path=/path/to/{os.path.basename(name)} (or a directory made by `python -m "
      f"inpaint_jax.convert {kind}`)")


def converted_file(path: str, kind: str) -> str:
  """The `.npz` a converted path names: the file itself or `<dir>/<kind>.npz`."""
  return os.path.join(path, f"{kind}.npz") if os.path.isdir(path) else path


def load_variables(kind: str, path: str, field: str,
                   from_torch: Callable[[Mapping[str, Any]], dict[str, Any]]) -> dict[str, Any]:
  """The backbone's Flax variables from `path` (published `.pth`, converted `.npz` or dir).

  Args:
    kind: the backbone kind (a key of `PUBLISHED`).
    path: the config's `path` value.
    field: the config group, e.g. `frozen.resnet_pl`, for messages.
    from_torch: PyTorch state_dict -> variables ({"params", maybe "batch_stats"}).

  Raises:
    ValueError: the file is missing, unreadable or holds other weights (one line, naming
      the file and the config field).
  """
  target = converted_file(path, kind) if path else ""
  if not target or not os.path.isfile(target):
    raise missing_weights(kind, path, field)
  try:
    if target.endswith(".npz"):
      return params_file.load_params(target, kind, what=f"{field}.path")
    return from_torch(torch_file.load_state_dict(target))
  except (ValueError, FileNotFoundError) as e:
    raise ValueError(f"config field {field}.path: {target!r}: {e}") from None


def convert_backbone(kind: str, checkpoint: str, output: str,
                     from_torch: Callable[[Mapping[str, Any]], dict[str, Any]]) -> str:
  """Converts the published file `checkpoint` into `output/<kind>.npz`; returns that path."""
  variables = from_torch(torch_file.load_state_dict(checkpoint))
  out = os.path.join(output, f"{kind}.npz")
  params_file.save_params(out, variables, kind)
  return out
