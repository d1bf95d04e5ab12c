"""The `lama` converter: official LaMa checkpoints -> a model directory.

Accepts a PyTorch Lightning `.ckpt` (its `state_dict` holds `generator.*`, `discriminator.*`
and loss-network keys; only the first two are read), a bare generator state dict, or a released
model folder (`config.yaml` + `models/best.ckpt`, e.g. `big-lama/`). The generator's shape is
read from the tensors, so any official `FFCResNetGenerator` converts:

  ngf, input_nc          `model.1.ffc.convl2l.weight` (out, in)
  n_downsampling         index of the first residual block minus 2
  n_blocks               number of `model.K.conv1.ffc.*` blocks
  ratio_g                global share of the first block's input channels
  enable_lfu             presence of `.lfu.` keys
  max_features           the bottleneck width when it is below ngf * 2**n_downsampling
  output_nc              the last conv's output channels

and the discriminator's (`NLayerDiscriminator`) ndf, n_layers and input channels likewise.
Everything else (data, losses, optimisers for fine-tuning) comes from the config:
`configs/lama.py` (variant `big` for 18 blocks, `fourier` otherwise) unless `--config` is given.
"""

from __future__ import annotations

import os
import re
from typing import Any

import ml_collections
import numpy as np
import yaml

from inpaint_jax.config_lib import SOURCE_ROOT, load_config_file
from inpaint_jax.models.api import Converted, Options, register_converter
from inpaint_jax.models.lama import torch_keys as lama_keys
from inpaint_jax.weights.torch_file import load_state_dict

RELEASED_CHECKPOINT = os.path.join("models", "best.ckpt")
RELEASED_CONFIG = "config.yaml"


def _find_files(path: str) -> tuple[str, str | None]:
  """(checkpoint file, official config.yaml or None) for a file or a released model folder."""
  if os.path.isdir(path):
    ckpt = os.path.join(path, RELEASED_CHECKPOINT)
    if not os.path.isfile(ckpt):
      raise FileNotFoundError(
          f"--checkpoint {path}: a LaMa model folder must hold {RELEASED_CHECKPOINT} (and "
          f"{RELEASED_CONFIG}); or pass the .ckpt file itself")
    cfg = os.path.join(path, RELEASED_CONFIG)
    return ckpt, cfg if os.path.isfile(cfg) else None
  if os.path.getsize(path) == 0:
    raise ValueError(f"--checkpoint {path}: the file is empty (0 bytes)")
  parent = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  cfg = os.path.join(parent, RELEASED_CONFIG)
  is_released = os.path.basename(os.path.dirname(os.path.abspath(path))) == "models"
  return path, cfg if (is_released and os.path.isfile(cfg)) else None


def _read_official_config(path: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      data = yaml.safe_load(f)
  except yaml.YAMLError as e:
    raise ValueError(f"{path}: not a readable YAML file ({e.__class__.__name__})") from e
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected a YAML mapping (LaMa's training config)")
  gen = data.get("generator") or {}
  kind = gen.get("kind", "ffc_resnet")
  if kind != "ffc_resnet":
    raise ValueError(f"{path}: generator.kind={kind!r} is not supported; accepted: ffc_resnet "
                     f"(LaMa's Fourier generators)")
  out_act = gen.get("add_out_act", "sigmoid")
  if out_act not in ("sigmoid", True):
    raise ValueError(f"{path}: generator.add_out_act={out_act!r} is not supported; accepted: "
                     f"sigmoid")
  if not (data.get("training_model") or {}).get("concat_mask", True):
    raise ValueError(f"{path}: training_model.concat_mask=false is not supported")
  return data


def _ratio_for(dim: int, n_global: int, preferred: float) -> float:
  """A ratio r with int(dim * r) == n_global, preferring `preferred` and round values."""
  for r in (preferred, 0.75, 0.5, 0.25, 0.0, 1.0, n_global / dim, (n_global + 0.5) / dim):
    if int(dim * r) == n_global:
      return float(r)
  raise ValueError(f"no global ratio gives {n_global} of {dim} channels")


def infer_generator(sd: dict[str, np.ndarray], max_features: int = 1024,
                    preferred_ratio: float = 0.75) -> dict[str, Any]:
  """`FFCResNetGenerator` settings from its (unprefixed) state dict."""
  first = sd.get("model.1.ffc.convl2l.weight")
  if first is None:
    raise ValueError("no LaMa FFC generator in the checkpoint (no key "
                     "generator.model.1.ffc.convl2l.weight)")
  ngf, input_nc = int(first.shape[0]), int(first.shape[1])
  blocks = sorted({int(m.group(1)) for k in sd
                   if (m := re.match(r"model\.(\d+)\.conv1\.ffc\.", k))})
  if blocks:
    n_down = blocks[0] - 2
    n_blocks = len(blocks)
    b = f"model.{blocks[0]}.conv1.ffc"
    n_local = int(sd[f"{b}.convl2l.weight"].shape[1]) if f"{b}.convl2l.weight" in sd else 0
    g_key = f"{b}.convg2g.conv1.0.weight"
    n_global = int(sd[g_key].shape[1]) if g_key in sd else 0
    dim = n_local + n_global
    ratio_g = _ratio_for(dim, n_global, preferred_ratio)
  else:
    n_down = len({int(m.group(1)) for k in sd
                  if (m := re.match(r"model\.(\d+)\.ffc\.convl2l\.", k)) and int(m.group(1)) > 1})
    n_blocks, ratio_g = 0, 0.0
    dim = sum(int(sd[k].shape[0]) for k in (f"model.{1 + n_down}.ffc.convl2l.weight",
                                            f"model.{1 + n_down}.ffc.convl2g.weight") if k in sd)
  if dim < ngf * 2 ** n_down:
    max_features = dim
  elif max_features < dim:
    max_features = dim
  last = sd.get(f"model.{4 + 4 * n_down + n_blocks}.weight")
  output_nc = 3 if last is None else int(last.shape[0])
  return dict(ngf=ngf, n_downsampling=n_down, n_blocks=n_blocks, ratio_g=ratio_g,
              enable_lfu=any(".lfu." in k for k in sd), max_features=max_features,
              input_nc=input_nc, output_nc=output_nc)


def _short(e: Exception, keep: int = 6) -> str:
  """The key-mismatch report on one line, the first few entries only."""
  lines = [x.strip() for x in str(e).splitlines() if x.strip()]
  more = f" ... ({len(lines) - keep} more lines)" if len(lines) > keep else ""
  return "; ".join(lines[:keep]) + more


def _split(sd: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
  return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _default_config(n_blocks: int) -> ml_collections.ConfigDict:
  variant = "big" if n_blocks == 18 else "fourier"
  return load_config_file(os.path.join(SOURCE_ROOT, "configs", "lama.py") + f":{variant}")


@register_converter("lama", default_config=None,
                    help="official LaMa: Lightning .ckpt or a released folder "
                         "(config.yaml + models/best.ckpt)")
def convert_lama(checkpoint: str, config: ml_collections.ConfigDict | None,
                 options: Options) -> Converted:
  """Official LaMa checkpoint -> our generator (and discriminator) variables and config."""
  del options  # LaMa has no converter flags.
  ckpt, official_cfg_path = _find_files(checkpoint)
  official = _read_official_config(official_cfg_path) if official_cfg_path else None
  sd = load_state_dict(ckpt)
  g_sd = _split(sd, "generator.") if any(k.startswith("generator.") for k in sd) else dict(sd)
  d_sd = _split(sd, "discriminator.")
  if official and official.get("generator", {}).get("max_features"):
    mf = int(official["generator"]["max_features"])
  else:
    mf = int(config.generator.get("max_features", 1024)) if config is not None else 1024
  pref = float(config.generator.get("ratio_g", 0.75)) if config is not None else 0.75
  try:
    g_info = infer_generator(g_sd, mf, pref)
  except ValueError as e:
    raise ValueError(f"--checkpoint {ckpt}: {e}") from e
  if config is None:
    config = _default_config(g_info["n_blocks"])
  gen_cfg = {k: v for k, v in g_info.items()
             if not (k == "input_nc" and v == 4) and not (k == "output_nc" and v == 3)}
  with config.unlocked():
    config.generator.name = "ffc_resnet"
    for k, v in gen_cfg.items():
      config.generator[k] = v
  if not g_info["n_blocks"] or not g_info["n_downsampling"]:
    raise ValueError(f"--checkpoint {ckpt}: no FFC residual blocks or downsampling stages "
                     f"(generator.model.K.conv1.ffc.*); accepted: an official LaMa "
                     f"FFCResNetGenerator")
  try:
    g_vars = lama_keys.generator_variables_from_torch(
        g_sd, n_downsampling=g_info["n_downsampling"], n_blocks=g_info["n_blocks"],
        ratio_g=g_info["ratio_g"], enable_lfu=g_info["enable_lfu"],
        max_features=g_info["max_features"])
  except ValueError as e:
    raise ValueError(f"--checkpoint {ckpt}: {_short(e)}") from e
  variables = {"g": g_vars}
  extra: dict[str, Any] = {"inferred": {"generator": g_info}}
  if d_sd:
    try:
      d_vars = lama_keys.discriminator_variables_from_torch(d_sd)
    except ValueError as e:
      raise ValueError(f"--checkpoint {ckpt}: {_short(e)}") from e
    first = d_sd["model0.0.weight"]
    ndf, d_in = int(first.shape[0]), int(first.shape[1])
    n_layers = max(int(m.group(1)) for k in d_sd if (m := re.match(r"model(\d+)\.", k))) - 1
    if d_in not in (3, 4):
      raise ValueError(f"--checkpoint {ckpt}: the discriminator takes {d_in} channels; "
                       f"accepted: 3 (RGB) or 4 (RGB + mask)")
    with config.unlocked():
      config.discriminator.name = "nlayer"
      config.discriminator.ndf = ndf
      config.discriminator.n_layers = n_layers
      config.losses.d_input_mask = d_in == 4
    variables["d"] = d_vars
    extra["inferred"]["discriminator"] = dict(ndf=ndf, n_layers=n_layers, input_nc=d_in)
  ignored = sorted({k.split(".", 1)[0] for k in sd
                    if not k.startswith(("generator.", "discriminator."))} if d_sd or
                   any(k.startswith("generator.") for k in sd) else set())
  if ignored:
    extra["ignored_key_prefixes"] = ignored
  if official is not None:
    extra["official_config"] = {"file": os.path.abspath(official_cfg_path),
                                "generator": official.get("generator")}
  return Converted(family="lama", config=config, variables=variables, source_file=ckpt,
                   extra_manifest=extra)
