"""The `dcf` converter: an official DCF training checkpoint -> a model directory.

  python -m inpaint_jax.convert dcf --checkpoint checkpoints/best_model.pth --output models/dcf

The official `Trainer.save_checkpoint` writes one dict: `generator_state_dict`,
`discriminator_state_dict`, the AdamW, cosine-scheduler and (with AMP) grad-scaler
states, the `DCFConfig` as a dict (`config`), `epoch`, `global_step`, `best_psnr`,
metrics and loss history. A bare generator state_dict is accepted too (then there is no
discriminator). It is read without torch; the optimiser states are not converted (they
are PyTorch's and restarting a run from them is not supported).

The widths and the stage count come from the tensors (`inpaint_jax.convert.dcf`); the
scale and blending settings from the saved config dict (else the official defaults);
everything else from `configs/dcf.py` (or `--config`). The official code trained and
ran with ImageNet-normalised images, so the converted config keeps `value_range=imagenet`
and the official bug switches; the inference adapter normalises. The importance gate is
the config's, `all` by default (every quarter kept: the official rule in exact
arithmetic, so the output is the official module's with exact gates); the converter
never sets it, and `--config.generator.importance_gate=official` gives the float
emulation. Any `--config.*` override wins over the fields set here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from inpaint_jax.config_lib import SOURCE_ROOT, load_config_file
from inpaint_jax.models.api import Converted, Options, register_converter
from inpaint_jax.models.dcf import torch_keys as dcf_keys
from inpaint_jax.weights.torch_file import load_torch_file

G_KEY, D_KEY = "generator_state_dict", "discriminator_state_dict"


def _default_config() -> ml_collections.ConfigDict:
  return load_config_file(os.path.join(SOURCE_ROOT, "configs", "dcf.py") + ":official")


def _plain(value: Any) -> Any:
  """JSON-friendly copy of small config values (lists, numbers, strings)."""
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_plain(v) for v in value]
  if isinstance(value, bool | int | float | str) or value is None:
    return value
  return str(value)


@register_converter("dcf", default_config="configs/dcf.py",
                    help="official DCF (GCFN): a save_checkpoint dict or a bare generator "
                         "state_dict (.pth)")
def convert_dcf(checkpoint: str, config: ml_collections.ConfigDict | None,
                options: Options) -> Converted:
  """Official DCF checkpoint -> generator (and discriminator) variables and a config."""
  del options
  if os.path.isdir(checkpoint):
    raise ValueError(f"--checkpoint {checkpoint}: expected the .pth file written by the "
                     "official trainer, got a folder")
  obj = load_torch_file(checkpoint)
  if not isinstance(obj, Mapping):
    raise ValueError(f"--checkpoint {checkpoint}: holds a {type(obj).__name__}; expected the "
                     f"official checkpoint dict (with {G_KEY!r}) or a state_dict")
  if G_KEY in obj:
    g_sd, d_sd, saved = obj[G_KEY], obj.get(D_KEY), obj.get("config")
  else:
    g_sd, d_sd, saved = obj, None, None
  try:
    fields = dcf_keys.infer_generator_fields(g_sd)
    variables = {"g": dcf_keys.generator_variables(g_sd)}
    filters = None
    if isinstance(d_sd, Mapping) and d_sd:
      filters, variables["d"] = dcf_keys.discriminator_variables(d_sd)
  except (dcf_keys.DCFCheckpointError, KeyError) as e:
    raise ValueError(f"--checkpoint {checkpoint}: {e}") from None
  fields.update(dcf_keys.generator_fields_from_config(saved))
  if config is None:
    config = _default_config()
  config.generator.update(fields)
  config.generator.value_range = "imagenet"   # how the official code trains and infers
  if filters is not None:
    config.discriminator.filters = filters
    config.discriminator.value_range = "imagenet"
  else:
    config.discriminator = ml_collections.ConfigDict(dict(name="none"))
  if isinstance(saved, Mapping) and isinstance(saved.get("image_size"), int):
    config.data.image_size = int(saved["image_size"])
  extra = {"inferred": {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}
  for key in ("epoch", "global_step", "best_psnr"):
    if isinstance(obj.get(key), int | float):
      extra[key] = obj[key]
  if isinstance(saved, Mapping):
    extra["official_config"] = _plain(saved)
  return Converted(family="dcf", config=config, variables=variables, source_file=checkpoint,
                   extra_manifest=extra)
