"""PyTorch -> JAX weights for the DFNet generator, with the architecture read from shapes.

The published checkpoints (`model_places2.pth`, `model_celeba.pth`) are bare
state_dicts of the official `DFNet()` saved in torch's legacy format (read without
torch by `inpaint_jax.weights.torch_file`). Official key -> our variable (levels
counted from the finest; `X.conv[.1]` = `X.conv` for convs with symmetric padding,
`X.conv.1` behind a ZeroPad2d otherwise):

  en_i.encode.0.conv[.1].weight/bias   -> params  en_i/kernel, bias
  en_i.encode.1.*  (BatchNorm, i >= 1) -> params / batch_stats  en_i_norm/*
  de_l.up.up.trans_conv.weight/bias    -> params  de_l_up/*   (mode 'deconv' only)
  de_l.decode.0.conv[.1].weight/bias   -> params  de_l/*
  de_l.decode.1.*  (BatchNorm)         -> de_l_norm/*
  fuse_l.map2img.0.conv[.1].*          -> fuse_l/map2img/*
  fuse_l.blend.blend.{0,3,6}.conv[.1].* -> fuse_l/blend_conv{0,1,2}/*
  fuse_l.blend.blend.{1,4}.*  (BN)     -> fuse_l/blend_bn{0,1}/*

Leaves: conv `weight` (OIHW) -> `kernel` = w.transpose(2, 3, 1, 0); ConvTranspose2d
`weight` (IOHW) -> w.transpose(2, 3, 0, 1) (see `models.layers.ConvTranspose`); BN
`weight` / `bias` -> `scale` / `bias`, `running_mean` / `running_var` -> batch_stats
`mean` / `var`; `num_batches_tracked` (int64 in the release) is ignored (momentum is
fixed, so PyTorch never reads it).

Inferred from the tensors: depth (number of `en_i`), en_ksize / de_ksize (kernel
shapes), c_base (en_0's width), c_max (the widest encoder level), c_img / c_mask /
c_alpha, blend_layers (the `fuse_l` present), mode (a `trans_conv` means 'deconv') and
norm ('batch' when the encoder has BN tensors). A state_dict without BN tensors is
'instance' or 'none', which the tensors cannot tell apart: pass `norm=`. Activations
leave no trace either; the official defaults are assumed unless given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from inpaint_jax.models.dfnet.network import encoder_widths
from inpaint_jax.weights.tree import set_path, unused_tensors

Variables = dict[str, Any]

_BN_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


class DFNetCheckpointError(ValueError):
  """The state_dict is not an official-layout DFNet generator."""


def _np(v: Any) -> np.ndarray:
  return np.asarray(v, dtype=np.float32)


def _conv_key(sd: Mapping[str, Any], prefix: str) -> str | None:
  """`prefix.conv` or `prefix.conv.1` (behind a ZeroPad2d), whichever holds a weight."""
  for key in (f"{prefix}.conv", f"{prefix}.conv.1"):
    if f"{key}.weight" in sd:
      return key
  return None


def _levels(sd: Mapping[str, Any], name: str) -> list[int]:
  pat = re.compile(rf"^{name}_(\d+)\.")
  return sorted({int(m.group(1)) for k in sd if (m := pat.match(k))})


def infer_config(state_dict: Mapping[str, Any], *, norm: str | None = None
                 ) -> dict[str, Any]:
  """The `DFNet` constructor fields that reproduce `state_dict`'s shapes.

  Raises:
    DFNetCheckpointError: for missing levels or tensors, or shapes the official
      construction cannot produce.
  """
  sd = state_dict
  depth_levels = _levels(sd, "en")
  if not depth_levels or depth_levels != list(range(len(depth_levels))):
    raise DFNetCheckpointError(f"no official DFNet encoder keys en_0.. (found levels "
                               f"{depth_levels}); is this a DFNet generator state_dict?")
  depth = len(depth_levels)
  if _levels(sd, "de") != list(range(depth)):
    raise DFNetCheckpointError(f"decoder levels {_levels(sd, 'de')} do not match the "
                               f"{depth} encoder levels")
  en_ksize, widths = [], []
  c_in0 = None
  for i in range(depth):
    key = _conv_key(sd, f"en_{i}.encode.0")
    if key is None:
      raise DFNetCheckpointError(f"missing en_{i}.encode.0.conv weight")
    w = np.shape(sd[f"{key}.weight"])
    if c_in0 is None:
      c_in0 = w[1]
    en_ksize.append(int(w[2]))
    widths.append(int(w[0]))
  c_base, c_max = widths[0], max(widths)
  if encoder_widths(depth, c_base, c_max) != widths:
    raise DFNetCheckpointError(f"encoder widths {widths} do not follow the DFNet rule "
                               f"min(2 * c_in, c_max)")
  de_ksize = []
  for level in range(depth - 1, -1, -1):
    key = _conv_key(sd, f"de_{level}.decode.0")
    if key is None:
      raise DFNetCheckpointError(f"missing de_{level}.decode.0.conv weight")
    de_ksize.append(int(np.shape(sd[f"{key}.weight"])[2]))
  blend_layers = _levels(sd, "fuse")
  if 0 not in blend_layers:
    raise DFNetCheckpointError("no fuse_0 block: DFNet always blends the finest level")
  map2img = _conv_key(sd, "fuse_0.map2img.0")
  alpha = _conv_key(sd, "fuse_0.blend.blend.6")
  if map2img is None or alpha is None:
    raise DFNetCheckpointError("fuse_0 lacks its map2img / blend convs")
  c_img = int(np.shape(sd[f"{map2img}.weight"])[0])
  c_alpha = int(np.shape(sd[f"{alpha}.weight"])[0])
  mode = "deconv" if any(".up.up.trans_conv." in k for k in sd) else "nearest"
  has_bn = "en_1.encode.1.running_mean" in sd if depth > 1 else \
      "de_0.decode.1.running_mean" in sd
  if norm is None:
    norm = "batch" if has_bn else "none"
  elif (norm == "batch") != has_bn:
    raise DFNetCheckpointError(f"norm={norm!r} but the state_dict "
                               f"{'has' if has_bn else 'has no'} encoder BatchNorm tensors")
  return dict(c_img=c_img, c_mask=int(c_in0) - c_img, c_alpha=c_alpha, mode=mode, norm=norm,
              en_ksize=tuple(en_ksize), de_ksize=tuple(de_ksize),
              blend_layers=tuple(blend_layers), c_base=c_base, c_max=c_max)


def _our_to_torch(config: Mapping[str, Any]) -> dict[tuple[str, ...], tuple[str, str]]:
  """(collection, module..., leaf) -> (torch key, kind) for every variable of the config.

  kind is 'conv', 'convT' or 'vec'; the torch key of a conv is filled in later with the
  right `conv` / `conv.1` form, so it is given here without the `.conv...` suffix.
  """
  depth = len(config["en_ksize"])
  out: dict[tuple[str, ...], tuple[str, str]] = {}

  def conv(ours: tuple[str, ...], torch_prefix: str):
    out[("params",) + ours + ("kernel",)] = (f"{torch_prefix}|weight", "conv")
    out[("params",) + ours + ("bias",)] = (f"{torch_prefix}|bias", "vec")

  def bn(ours: tuple[str, ...], torch_prefix: str):
    for leaf, (col, name) in _BN_LEAVES.items():
      out[(col,) + ours + (name,)] = (f"{torch_prefix}.{leaf}", "vec")

  batch = config["norm"] == "batch"
  for i in range(depth):
    conv((f"en_{i}",), f"en_{i}.encode.0")
    if i > 0 and batch:
      bn((f"en_{i}_norm",), f"en_{i}.encode.1")
  for level in range(depth):
    if config["mode"] == "deconv":
      out[("params", f"de_{level}_up", "kernel")] = (f"de_{level}.up.up.trans_conv.weight",
                                                      "convT")
      out[("params", f"de_{level}_up", "bias")] = (f"de_{level}.up.up.trans_conv.bias", "vec")
    conv((f"de_{level}",), f"de_{level}.decode.0")
    if batch:
      bn((f"de_{level}_norm",), f"de_{level}.decode.1")
  for level in config["blend_layers"]:
    f = f"fuse_{level}"
    conv((f, "map2img"), f"{f}.map2img.0")
    for j, idx in enumerate((0, 3, 6)):
      conv((f, f"blend_conv{j}"), f"{f}.blend.blend.{idx}")
    for j, idx in enumerate((1, 4)):
      bn((f, f"blend_bn{j}"), f"{f}.blend.blend.{idx}")
  return out


def _resolve(sd: Mapping[str, Any], key: str) -> str:
  if "|" not in key:
    return key
  prefix, leaf = key.split("|")
  conv = _conv_key(sd, prefix)
  if conv is None:
    raise DFNetCheckpointError(f"missing {prefix}.conv weight")
  return f"{conv}.{leaf}"


def variables_from_torch(state_dict: Mapping[str, Any], *, norm: str | None = None
                         ) -> tuple[dict[str, Any], Variables]:
  """Converts an official DFNet state_dict.

  Args:
    state_dict: torch key -> array (numpy or anything `np.asarray` takes).
    norm: only needed for checkpoints without BatchNorm ('instance' or 'none').

  Returns:
    (generator config fields for `models.dfnet.DFNet`, {"params", "batch_stats"}
    as nested dicts of float32 numpy arrays).

  Raises:
    DFNetCheckpointError: unknown, missing or badly shaped tensors.
  """
  sd = dict(state_dict)
  config = infer_config(sd, norm=norm)
  variables: Variables = {"params": {}, "batch_stats": {}}
  used = set()
  for path, (key, kind) in _our_to_torch(config).items():
    key = _resolve(sd, key)
    if key not in sd:
      raise DFNetCheckpointError(f"missing tensor {key}")
    value = _np(sd[key])
    if kind == "conv":
      if value.ndim != 4:
        raise DFNetCheckpointError(f"{key}: expected an OIHW conv weight, got {value.shape}")
      value = value.transpose(2, 3, 1, 0)
    elif kind == "convT":
      value = value.transpose(2, 3, 0, 1)
    used.add(key)
    set_path(variables, path, np.ascontiguousarray(value))
  message = unused_tensors(sd, used)
  if message:
    raise DFNetCheckpointError(message)
  if not variables["batch_stats"]:
    del variables["batch_stats"]
  return config, variables


def variables_to_torch(variables: Mapping[str, Any], config: Mapping[str, Any]
                       ) -> dict[str, np.ndarray]:
  """The inverse of `variables_from_torch`: an official-layout state_dict (float32 numpy).

  `num_batches_tracked` is written as 0 (nothing reads it at momentum 0.1).
  """
  sd: dict[str, np.ndarray] = {}
  for path, (key, kind) in _our_to_torch(config).items():
    node = variables
    for p in path:
      node = node[p]
    value = np.asarray(node, np.float32)
    if "|" in key:
      prefix, leaf = key.split("|")
      # Official Conv2dSame: a ZeroPad2d before the conv when the padding is uneven.
      ksize = int(_kernel_of(variables, path)[0])
      stride = 2 if re.match(r"^en_\d+$", path[1]) else 1
      uneven = (ksize - stride) % 2 == 1
      key = f"{prefix}.conv{'.1' if uneven else ''}.{leaf}"
    if kind == "conv":
      value = value.transpose(3, 2, 0, 1)
    elif kind == "convT":
      value = value.transpose(2, 3, 0, 1)
    sd[key] = value
    if key.endswith(".running_var"):
      sd[key.replace("running_var", "num_batches_tracked")] = np.zeros((), np.int64)
  return sd


def _kernel_of(variables: Mapping[str, Any], path: tuple[str, ...]) -> tuple[int, ...]:
  node = variables["params"]
  for p in path[1:-1]:
    node = node[p]
  return tuple(np.shape(node["kernel"]))
