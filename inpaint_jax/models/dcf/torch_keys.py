"""PyTorch -> JAX weights for DCF's generator and discriminator, architecture from shapes.

Official key -> our variable (`inpaint_jax.models.dcf` names every layer after its
official state_dict prefix with "." replaced by "_"):

  <prefix>.weight/bias  (Conv2d)              -> params <name>/kernel, bias
  decoderK.upconv.weight/bias (ConvTranspose2d) -> params decoderK_upconv/kernel, bias
  <prefix>.weight/bias/running_mean/running_var (BatchNorm2d)
                                              -> params <name>/scale, bias;
                                                 batch_stats <name>/mean, var
  progressive_refinement.coarse_fusion.S.gamma/beta
                                              -> params ..._S_gamma, ..._S_beta (1,)
  num_batches_tracked                         -> ignored (momentum is fixed)
  D: model.{0,2,5}.weight_orig/bias           -> params model_i/layer/kernel, bias
     model.{0,2,5}.weight_u/weight_v          -> spectral model_i/u, v (unchanged)
     model.8.weight/bias                      -> params model_8/kernel, bias

Leaves: Conv2d OIHW -> HWIO (`w.transpose(2, 3, 1, 0)`); ConvTranspose2d IOHW ->
`w.transpose(2, 3, 0, 1)` (no flip; see `models.layers.ConvTranspose`).

Inferred from the tensors: input_channels, encoder_depths, decoder_depths, hidden_dim,
refinement_stages and the discriminator's filters. The scale settings and the blending
kernel sizes leave no trace in the weights: they come from the checkpoint's config dict
when it has one, else the official defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

Variables = dict[str, Any]

_BN_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}
# DCFConfig attributes that configure the generator and leave no trace in the weights.
CONFIG_FIELDS = ("min_scale_size", "max_scale_size", "scale_factor", "dropout_rate",
                 "smooth_kernel_size", "smooth_sigma", "boundary_dilation")


class DCFCheckpointError(ValueError):
  """The state_dict is not an official-layout DCF network."""


def _np(v: Any) -> np.ndarray:
  return np.asarray(v, dtype=np.float32)


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
  if key not in sd:
    raise DCFCheckpointError(f"missing tensor {key!r}; is this a DCF generator state_dict?")
  return tuple(np.shape(sd[key]))


def infer_generator_fields(sd: Mapping[str, Any]) -> dict[str, Any]:
  """The `DCF` constructor fields that the tensors determine."""
  enc = [_shape(sd, f"encoder{k}.conv1.weight")[0] for k in (1, 2, 3, 4)]
  dec = [_shape(sd, "decoder4.upconv.weight")[0]] + [
      _shape(sd, f"decoder{k}.conv1.weight")[0] for k in (4, 3, 2)]
  hidden = _shape(sd, "progressive_refinement.channel_adapter.0.weight")[0]
  stages = sorted({int(m.group(1)) for k in sd
                   if (m := re.match(r"^progressive_refinement\.coarse_fusion\.(\d+)\.", k))})
  if not stages or stages != list(range(len(stages))):
    raise DCFCheckpointError(f"refinement stages {stages}: expected 0..n-1")
  channels = _shape(sd, "output_conv.3.weight")[0]
  return dict(input_channels=int(channels), encoder_depths=tuple(int(c) for c in enc),
              decoder_depths=tuple(int(c) for c in dec), hidden_dim=int(hidden),
              refinement_stages=len(stages))


def generator_variables(sd: Mapping[str, Any]) -> Variables:
  """Official generator state_dict -> {"params", "batch_stats"} (numpy)."""
  params: dict[str, Any] = {}
  stats: dict[str, Any] = {}
  prefixes = {}
  for key in sd:
    prefix, leaf = key.rsplit(".", 1)
    prefixes.setdefault(prefix, set()).add(leaf)
  for prefix, leaves in prefixes.items():
    name = prefix.replace(".", "_")
    if "running_mean" in leaves:
      for leaf, (col, new) in _BN_LEAVES.items():
        (params if col == "params" else stats).setdefault(name, {})[new] = _np(
            sd[f"{prefix}.{leaf}"])
      continue
    for leaf in sorted(leaves):
      value = _np(sd[f"{prefix}.{leaf}"])
      if leaf in ("gamma", "beta"):
        params[f"{name}_{leaf}"] = value.reshape(1)
      elif leaf == "weight":
        if value.ndim != 4:
          raise DCFCheckpointError(f"{prefix}.weight has shape {value.shape}; expected a "
                                   "4-D convolution weight")
        order = (2, 3, 0, 1) if prefix.endswith(".upconv") else (2, 3, 1, 0)
        params.setdefault(name, {})["kernel"] = np.ascontiguousarray(value.transpose(order))
      elif leaf == "bias":
        params.setdefault(name, {})["bias"] = value
      else:
        raise DCFCheckpointError(f"unexpected tensor {prefix}.{leaf}")
  return {"params": params, "batch_stats": stats}


def discriminator_variables(sd: Mapping[str, Any]) -> tuple[int, Variables]:
  """Official discriminator state_dict -> (filters, {"params", "spectral"})."""
  params: dict[str, Any] = {}
  spectral: dict[str, Any] = {}
  for idx in (0, 2, 5):
    name = f"model_{idx}"
    w = _np(sd[f"model.{idx}.weight_orig"]) if f"model.{idx}.weight_orig" in sd else None
    if w is None:
      raise DCFCheckpointError(f"missing model.{idx}.weight_orig: DCF's discriminator has "
                               "spectral norm on its first three convs")
    params[name] = {"layer": {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)),
                              "bias": _np(sd[f"model.{idx}.bias"])}}
    spectral[name] = {"u": _np(sd[f"model.{idx}.weight_u"]),
                      "v": _np(sd[f"model.{idx}.weight_v"])}
  w = _np(sd["model.8.weight"])
  params["model_8"] = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)),
                       "bias": _np(sd["model.8.bias"])}
  filters = int(np.shape(sd["model.0.weight_orig"])[0])
  return filters, {"params": params, "spectral": spectral}


def generator_fields_from_config(saved: Mapping[str, Any] | None) -> dict[str, Any]:
  """The weight-less generator fields (`CONFIG_FIELDS`) the checkpoint's config dict sets."""
  if not isinstance(saved, Mapping):
    return {}
  out = {}
  for key in CONFIG_FIELDS:
    if key in saved and isinstance(saved[key], int | float) and not isinstance(saved[key], bool):
      out[key] = saved[key]
  return out
