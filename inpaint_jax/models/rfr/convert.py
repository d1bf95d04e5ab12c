"""The `rfr` converter: an official RFR-Net checkpoint -> a model directory.

  python -m inpaint_jax.convert rfr --checkpoint checkpoint_paris.pth --output models/paris
  python -m inpaint_jax.convert rfr --checkpoint g_400000.pth --output DIR \
      --config.generator.n_rec=6

Accepted files (torch's zip or legacy format, read without torch):
* the official `save_ckpt` dict {"n_iter": int, "generator": state_dict, "optimizer_G":
  optimizer state} (the released Paris StreetView and CelebA checkpoints); only the
  generator tensors are read, `n_iter` goes into the manifest;
* a bare generator state_dict, also with a `module.` (DataParallel) or `generator.` prefix.

Every architecture field the tensors determine (ngf, rec_ksize, tail_ch, layer_size) is
inferred (`inpaint_jax.convert.rfr`); the number of recurrences leaves no trace in the
weights (they are shared), so it comes from the config: `--config.generator.n_rec=...`
(default 6, the published value). The rest of the config is `configs/rfr.py` (or
`--config`).
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from inpaint_jax.config_lib import SOURCE_ROOT, load_config_file
from inpaint_jax.models.api import Converted, Options, register_converter
from inpaint_jax.models.rfr import torch_keys as rfr_keys
from inpaint_jax.weights import torch_file

_PREFIXES = ("module.", "generator.", "G.")


def _default_config() -> ml_collections.ConfigDict:
  return load_config_file(os.path.join(SOURCE_ROOT, "configs", "rfr.py") + ":paris")


def read_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """(generator state_dict, what else the file says) of an official RFR-Net checkpoint.

  Raises:
    ValueError: naming the file, when it holds no RFR-Net generator.
  """
  if os.path.isdir(path):
    raise ValueError(f"--checkpoint {path}: expected the .pth file (the official "
                     f"`save_ckpt` dict or a generator state_dict), got a folder")
  # The lazy view reads only the top level; tensors are read by load_state_dict.
  with torch_file._Loaded(path) as loaded:  # pylint: disable=protected-access
    top = loaded.obj
    keys = list(top) if isinstance(top, dict) else []
    n_iter = top.get("n_iter") if isinstance(top, dict) else None
  info: dict[str, Any] = {}
  if "generator" in keys:
    sd = torch_file.load_state_dict(path, key="generator")
    info["format"] = "save_ckpt"
    if isinstance(n_iter, int):
      info["n_iter"] = n_iter
  else:
    try:
      sd = torch_file.load_state_dict(path)
    except torch_file.TorchFileError as e:
      raise ValueError(f"--checkpoint {path}: neither the official `save_ckpt` dict (keys "
                       f"n_iter, generator, optimizer_G) nor a generator state_dict: "
                       f"{e}") from None
    info["format"] = "state_dict"
  for prefix in _PREFIXES:
    if sd and all(k.startswith(prefix) for k in sd):
      sd = {k[len(prefix):]: v for k, v in sd.items()}
      info["stripped_prefix"] = prefix
  return sd, info


@register_converter("rfr", default_config="configs/rfr.py",
                    help="official RFR-Net: the `save_ckpt` dict (n_iter / generator / "
                         "optimizer_G) or a generator state_dict (.pth, legacy or zip "
                         "format); --config.generator.n_rec=N (default 6)")
def convert_rfr(checkpoint: str, config: ml_collections.ConfigDict | None,
                options: Options) -> Converted:
  """Official RFR-Net checkpoint -> our generator variables and a config that rebuilds it."""
  del options
  sd, info = read_checkpoint(checkpoint)
  if config is None:
    config = _default_config()
  n_rec = config.generator.get("n_rec", 6)
  if not isinstance(n_rec, int) or isinstance(n_rec, bool) or n_rec < 1:
    raise ValueError(f"config field generator.n_rec={n_rec!r} must be a positive integer "
                     f"(the number of recurrences the weights were trained with; 6 for "
                     f"the published models)")
  try:
    fields, variables = rfr_keys.variables_from_torch(sd, n_rec=n_rec)
  except rfr_keys.RFRCheckpointError as e:
    raise ValueError(f"--checkpoint {checkpoint}: {e}") from None
  config.generator.name = "rfr"
  config.generator.update(fields)
  if config.data.image_size % 16:
    raise ValueError(f"config field data.image_size={config.data.image_size} must be a "
                     f"multiple of 16 for RFR-Net")
  return Converted(family="rfr", config=config, variables={"g": variables},
                   source_file=checkpoint,
                   extra_manifest={"checkpoint": info, "inferred": dict(fields)})
