"""PyTorch -> JAX weights for the RFR-Net generator, with the architecture read from shapes.

Official `RFRNet` state_dict key -> our variable: the module path is kept, with the index
of an `nn.Sequential` joined to its name by `_` (`RFRModule.enc_1.0.weight` ->
`RFRModule/enc_1_0/kernel`, `RFRModule.enc_1.1.running_mean` -> batch_stats
`RFRModule/enc_1_1/mean`, `RFRModule.att.att.ratio` -> `RFRModule/att/att/ratio`,
`tail2.conv1.weight` -> `tail2/conv1/kernel`). Leaves: conv `weight` (OIHW) -> `kernel`
= w.transpose(2, 3, 1, 0); ConvTranspose2d `weight` (IOHW: `Tconv`, `RFRModule.dec_1..3.0`)
-> w.transpose(2, 3, 0, 1) (see `models.layers.ConvTranspose`); BN `weight` / `bias` ->
`scale` / `bias`, `running_mean` / `running_var` -> `mean` / `var`; `num_batches_tracked`
is ignored (momentum is fixed, so PyTorch never reads it). The partial convolutions'
mask-update kernels are not in the state_dict (they are buffers built at init).

Inferred from the tensors: `ngf` (Pconv1's width), `rec_ksize` (Pconv2's kernel),
`tail_ch` (tail1's width) and `layer_size` (the number of `enc_i`). The number of
recurrences `n_rec` leaves no trace (the weights are shared): it comes from the caller.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inpaint_jax.models.rfr.network import RFRNet
from inpaint_jax.weights.tree import set_path, unused_tensors

Variables = dict[str, Any]

_LEAF_TO_TORCH = {("params", "kernel"): "weight", ("params", "bias"): "bias",
                  ("params", "scale"): "weight", ("params", "ratio"): "ratio",
                  ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
_SEQ = re.compile(r"^(.*_\d+)_(\d+)$")
_TRANSPOSED = re.compile(r"^(Tconv|RFRModule\.dec_[123]\.0)$")


class RFRCheckpointError(ValueError):
  """The state_dict is not an official-layout RFR-Net generator."""


def infer_config(state_dict: Mapping[str, Any]) -> dict[str, int]:
  """The `RFRNet` fields the shapes determine: ngf, rec_ksize, tail_ch, layer_size.

  Raises:
    RFRCheckpointError: when the keys RFR-Net always has are missing.
  """
  sd = state_dict
  for key in ("Pconv1.weight", "Pconv2.weight", "tail1.weight", "out.weight"):
    if key not in sd:
      raise RFRCheckpointError(f"missing tensor {key}; is this an RFR-Net generator "
                               f"state_dict?")
  layers = sorted({int(m.group(1)) for k in sd
                   if (m := re.match(r"^RFRModule\.enc_(\d+)\.", k))})
  if not layers or layers != list(range(1, len(layers) + 1)):
    raise RFRCheckpointError(f"RFR module encoder layers {layers} are not enc_1..enc_n")
  return dict(ngf=int(np.shape(sd["Pconv1.weight"])[0]),
              rec_ksize=int(np.shape(sd["Pconv2.weight"])[2]),
              tail_ch=int(np.shape(sd["tail1.weight"])[0]),
              layer_size=len(layers))


def _torch_name(path: tuple[str, ...]) -> tuple[str, bool]:
  """(torch key, transposed conv?) of one of our variable paths (collection first)."""
  # `rec` is the scanned recurrence (Pconv21, Pconv22, bn2, RFRModule): no torch module.
  mods = [_SEQ.sub(r"\1.\2", p) for p in path[1:-1] if p != "rec"]
  module = ".".join(mods)
  leaf = _LEAF_TO_TORCH[(path[0], path[-1])]
  return f"{module}.{leaf}", bool(_TRANSPOSED.match(module))


def variable_shapes(fields: Mapping[str, Any]) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Our variable path (collection, module..., leaf) -> shape for the given config."""
  return dict(_variable_shapes(tuple(sorted(fields.items()))))


@functools.lru_cache(maxsize=16)
def _variable_shapes(fields: tuple[tuple[str, Any], ...]
                     ) -> tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]:
  # Tracing the network's init takes seconds (n_rec unrolled recurrences): cache it.
  net = RFRNet(**dict(fields))
  size = 16
  tree = jax.eval_shape(
      lambda: net.init(jax.random.key(0), jnp.zeros((1, size, size, 3)),
                       jnp.zeros((1, size, size, 1)), train=False))
  flat = jax.tree_util.tree_flatten_with_path(dict(tree))[0]
  return tuple((tuple(k.key for k in p), tuple(v.shape)) for p, v in flat)


def variables_from_torch(state_dict: Mapping[str, Any], *, n_rec: int = 6
                         ) -> tuple[dict[str, Any], Variables]:
  """Converts an official RFR-Net state_dict.

  Args:
    state_dict: torch key -> array (numpy or anything `np.asarray` takes).
    n_rec: the number of recurrences the weights were trained with (not in the file).

  Returns:
    (generator config fields for `models.rfr.RFRNet`, {"params", "batch_stats"} as
    nested dicts of float32 numpy arrays).

  Raises:
    RFRCheckpointError: unknown, missing or badly shaped tensors.
  """
  sd = dict(state_dict)
  fields = dict(infer_config(sd), n_rec=int(n_rec))
  variables: Variables = {}
  used = set()
  for path, shape in variable_shapes(fields).items():
    key, transposed = _torch_name(path)
    if key not in sd:
      raise RFRCheckpointError(f"missing tensor {key}")
    value = np.asarray(sd[key], np.float32)
    if len(shape) == 4:
      if value.ndim != 4:
        raise RFRCheckpointError(f"{key}: expected a 4-D conv weight, got {value.shape}")
      value = value.transpose(2, 3, 0, 1) if transposed else value.transpose(2, 3, 1, 0)
    if value.shape != shape:
      raise RFRCheckpointError(f"{key}: shape {np.shape(sd[key])} does not fit the network "
                               f"inferred from the other tensors ({fields})")
    used.add(key)
    set_path(variables, path, np.ascontiguousarray(value))
  message = unused_tensors(sd, used)
  if message:
    raise RFRCheckpointError(message)
  return fields, variables


def variables_to_torch(variables: Mapping[str, Any], dtype: Any = np.float32
                       ) -> dict[str, np.ndarray]:
  """The inverse of `variables_from_torch`: an official-layout state_dict (numpy, `dtype`).

  Also takes any sub-collection (e.g. only {"params": grads}). `num_batches_tracked` is
  written as 0 (nothing reads it at momentum 0.1).
  """
  sd: dict[str, np.ndarray] = {}
  flat = jax.tree_util.tree_flatten_with_path(dict(variables))[0]
  for p, v in flat:
    path = tuple(k.key for k in p)
    key, transposed = _torch_name(path)
    value = np.asarray(v, dtype)
    if value.ndim == 4:
      value = value.transpose(2, 3, 0, 1) if transposed else value.transpose(3, 2, 0, 1)
    sd[key] = np.ascontiguousarray(value)
    if key.endswith(".running_var"):
      sd[key.replace("running_var", "num_batches_tracked")] = np.zeros((), np.int64)
  return sd
