"""PyTorch <-> JAX weight conversion for LaMa's generator and discriminator.

Official state_dict names (`advimman/lama`) map onto our variables as follows
(d = n_downsampling, B = n_blocks):

  model.1.*                    -> init/*            (7x7 FFC_BN_ACT)
  model.{2+i}.*                -> down_{i}/*        (i < d)
  model.{2+d+b}.*              -> block_{b}/*       (b < B)
  model.{3+d+B+3i}.weight/bias -> up_{i}/kernel, bias   (ConvTranspose2d, IOHW)
  model.{4+d+B+3i}.*           -> up_bn_{i}/*       (BatchNorm2d)
  model.{4+4d+B}.weight/bias   -> out/kernel, bias  (final 7x7 conv)

Inside a module the PyTorch attribute names are kept, except that the spectral
path's Sequential `convg2g.conv1.0` (conv) / `convg2g.conv1.1` (BN) become
`convg2g/conv1` / `convg2g/bn1`. Leaves: conv `weight` -> `kernel`, BN
`weight` -> `scale`, `bias` -> `bias`, `running_mean` / `running_var` ->
batch_stats `mean` / `var`. `num_batches_tracked` is accepted and ignored
(momentum is fixed at 0.1, so PyTorch never reads it).

Layouts: Conv2d OIHW -> (kh, kw, in, out) = `w.transpose(2, 3, 1, 0)`;
ConvTranspose2d IOHW -> (kh, kw, in, out) = `w.transpose(2, 3, 0, 1)` (no flip,
see `inpaint_jax.models.layers.ConvTranspose`).

Discriminator (official `NLayerDiscriminator`): `model{n}.0.*` -> `conv_{n}/*`,
`model{n}.1.*` -> `bn_{n}/*`.

Keys prefixed with `generator.` / `discriminator.` (Lightning checkpoints) are
accepted: when any key has the prefix, only those keys are used and every
other key (losses, evaluators, the other network) is ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inpaint_jax.models.discriminators import NLayerDiscriminator
from inpaint_jax.models.lama.network import FFCResNetGenerator
from inpaint_jax.weights.tree import set_path

Variables = dict[str, Any]

_LEAF_TO_TORCH = {"kernel": "weight", "scale": "weight", "bias": "bias",
                  "mean": "running_mean", "var": "running_var"}


# ----------------------------------------------------------------------------- helpers


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()):
  for k, v in tree.items():
    if isinstance(v, Mapping):
      yield from _flatten(v, prefix + (k,))
    else:
      yield prefix + (k,), v


def _strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
  """Keeps `prefix.*` keys without the prefix if there are any, else everything."""
  if any(k.startswith(prefix) for k in state_dict):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
  return dict(state_dict)


def _to_numpy(v) -> np.ndarray:
  if hasattr(v, "detach"):  # a torch tensor, without importing torch
    v = v.detach().cpu().numpy()
  return np.asarray(v)


def _torch_shape(path: tuple[str, ...], shape: tuple[int, ...], is_transpose: bool):
  if path[-1] == "kernel" and len(shape) == 4:
    kh, kw, cin, cout = shape
    return (cin, cout, kh, kw) if is_transpose else (cout, cin, kh, kw)
  return tuple(shape)


def _from_torch_value(path, value: np.ndarray, is_transpose: bool) -> np.ndarray:
  value = np.asarray(value, np.float32)
  if path[-1] == "kernel" and value.ndim == 4:
    return np.ascontiguousarray(value.transpose((2, 3, 0, 1) if is_transpose else (2, 3, 1, 0)))
  return value


def _to_torch_value(path, value, is_transpose: bool) -> np.ndarray:
  value = np.asarray(value)
  if path[-1] == "kernel" and value.ndim == 4:
    return np.ascontiguousarray(value.transpose((2, 3, 0, 1) if is_transpose else (3, 2, 0, 1)))
  return value


def _convert_from_torch(state_dict: Mapping[str, Any], expected: Variables,
                        key_fn: Callable[[str, tuple[str, ...]], str],
                        is_transpose_fn: Callable[[tuple[str, ...]], bool],
                        what: str) -> Variables:
  """Fills `expected`'s structure from `state_dict`, checking keys and shapes."""
  sd = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
  out: Variables = {}
  missing, mismatched, used = [], [], set()
  for col, tree in expected.items():
    for path, leaf in _flatten(tree):
      key = key_fn(col, path)
      t = is_transpose_fn(path)
      want = _torch_shape(path, tuple(leaf.shape), t)
      if key not in sd:
        missing.append(f"{key} (expected shape {want})")
        continue
      used.add(key)
      got = _to_numpy(sd[key])
      if tuple(got.shape) != want:
        mismatched.append(f"{key}: expected {want}, got {tuple(got.shape)}")
        continue
      set_path(out.setdefault(col, {}), path, _from_torch_value(path, got, t))
  unexpected = sorted(set(sd) - used)
  if missing or unexpected or mismatched:
    lines = [f"{what}: the PyTorch state_dict does not match the model."]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", mismatched)):
      if items:
        lines.append(f"  {title} ({len(items)}):")
        lines += [f"    {s}" for s in items]
    raise ValueError("\n".join(lines))
  return out


def _convert_to_torch(variables: Mapping[str, Any],
                      key_fn: Callable[[str, tuple[str, ...]], str],
                      is_transpose_fn: Callable[[tuple[str, ...]], bool],
                      num_batches_tracked: int | None) -> dict[str, np.ndarray]:
  out: dict[str, np.ndarray] = {}
  for col in ("params", "batch_stats"):
    for path, leaf in _flatten(variables.get(col, {})):
      out[key_fn(col, path)] = _to_torch_value(path, leaf, is_transpose_fn(path))
      if num_batches_tracked is not None and col == "batch_stats" and path[-1] == "mean":
        prefix = key_fn(col, path)[: -len("running_mean")]
        out[prefix + "num_batches_tracked"] = np.asarray(num_batches_tracked, np.int64)
  return out


# ----------------------------------------------------------------------------- generator


def _gen_prefix(top: str, n_down: int, n_blocks: int) -> int:
  if top == "init":
    return 1
  name, _, idx = top.rpartition("_")
  i = int(idx) if idx.isdigit() else -1
  base_up = 3 + n_down + n_blocks
  if name == "down":
    return 2 + i
  if name == "block":
    return 2 + n_down + i
  if name == "up":
    return base_up + 3 * i
  if name == "up_bn":
    return base_up + 3 * i + 1
  if top == "out":
    return base_up + 3 * n_down + 1
  raise ValueError(f"unknown generator module {top!r}")


def _gen_key(col: str, path: tuple[str, ...], n_down: int, n_blocks: int) -> str:
  parts = [f"model.{_gen_prefix(path[0], n_down, n_blocks)}"]
  prev = None
  for p in path[1:-1]:
    if prev == "convg2g" and p == "conv1":
      p = "conv1.0"
    elif prev == "convg2g" and p == "bn1":
      p = "conv1.1"
    parts.append(p)
    prev = p
  parts.append(_LEAF_TO_TORCH[path[-1]])
  return ".".join(parts)


def _gen_is_transpose(path: tuple[str, ...]) -> bool:
  return re.fullmatch(r"up_\d+", path[0]) is not None


def _gen_counts(variables: Mapping[str, Any]) -> tuple[int, int]:
  tops = variables["params"].keys()
  n_down = sum(1 for k in tops if re.fullmatch(r"down_\d+", k))
  n_blocks = sum(1 for k in tops if re.fullmatch(r"block_\d+", k))
  return n_down, n_blocks


@functools.lru_cache(maxsize=16)
def _generator_shapes(input_nc, output_nc, ngf, n_downsampling, n_blocks, ratio_g,
                      enable_lfu, max_features) -> Variables:
  gen = FFCResNetGenerator(input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                           n_downsampling=n_downsampling, n_blocks=n_blocks, ratio_g=ratio_g,
                           enable_lfu=enable_lfu, max_features=max_features)
  # Bottleneck of 2x2: the smallest map that reflect padding and LFU accept.
  s = 2 ** (n_downsampling + 1)
  img = jax.ShapeDtypeStruct((1, s, s, input_nc - 1), jnp.float32)
  msk = jax.ShapeDtypeStruct((1, s, s, 1), jnp.float32)
  return jax.eval_shape(functools.partial(gen.init, train=False), jax.random.key(0), img, msk)


def generator_variables_from_torch(
    state_dict: Mapping[str, Any], *, n_downsampling: int = 3, n_blocks: int | None = None,
    ratio_g: float = 0.75, enable_lfu: bool | None = None, max_features: int = 1024
) -> Variables:
  """Official LaMa `FFCResNetGenerator` state_dict -> our variables.

  Args:
    state_dict: key -> array (numpy or CPU torch tensors), conv weights OIHW,
      ConvTranspose weights IOHW. Keys may carry a `generator.` prefix.
    n_downsampling: the generator's n_downsampling.
    n_blocks: number of residual blocks (None: counted from the keys).
    ratio_g: global share of the blocks (LaMa: 0.75).
    enable_lfu: LFU in the blocks (None: detected from `.lfu.` keys).
    max_features: the generator's max_features.
    (ngf, input_nc and output_nc are read from the first and last conv.)

  Returns:
    {"params": ..., "batch_stats": ...} of float32 numpy arrays for
    `FFCResNetGenerator(ngf=..., n_downsampling=..., n_blocks=..., ...)`.

  Raises:
    ValueError: listing missing keys, unexpected keys and shape mismatches
      (expected vs got, in PyTorch layout).
  """
  sd = _strip_prefix(state_dict, "generator.")
  if n_blocks is None:
    n_blocks = len({m.group(1) for k in sd if (m := re.match(r"model\.(\d+)\.conv1\.ffc\.", k))})
  if enable_lfu is None:
    enable_lfu = any(".lfu." in k for k in sd)
  first = sd.get("model.1.ffc.convl2l.weight")
  last = sd.get(f"model.{4 + 4 * n_downsampling + n_blocks}.weight")
  ngf, input_nc = (64, 4) if first is None else tuple(_to_numpy(first).shape[:2])
  output_nc = 3 if last is None else _to_numpy(last).shape[0]
  expected = _generator_shapes(input_nc, output_nc, ngf, n_downsampling, n_blocks, ratio_g,
                               enable_lfu, max_features)
  return _convert_from_torch(
      sd, expected, lambda col, p: _gen_key(col, p, n_downsampling, n_blocks),
      _gen_is_transpose, f"FFCResNetGenerator(ngf={ngf}, n_blocks={n_blocks})")


def generator_variables_to_torch(variables: Mapping[str, Any], *,
                                 num_batches_tracked: int | None = None
                                 ) -> dict[str, np.ndarray]:
  """Our generator variables (or a gradient tree shaped like them) -> torch keys.

  Args:
    variables: {"params": ...} and optionally {"batch_stats": ...}; any
      pytree with the params' structure works, e.g. gradients.
    num_batches_tracked: if given (and batch_stats are present), also emit
      `*.num_batches_tracked` int64 scalars with this value, which PyTorch's
      strict `load_state_dict` wants.

  Returns:
    Official state_dict key -> numpy array (OIHW convs, IOHW ConvTranspose).
  """
  n_down, n_blocks = _gen_counts(variables)
  return _convert_to_torch(variables, lambda col, p: _gen_key(col, p, n_down, n_blocks),
                           _gen_is_transpose, num_batches_tracked)


# ----------------------------------------------------------------------------- discriminator


def _disc_key(col: str, path: tuple[str, ...]) -> str:
  name, _, idx = path[0].rpartition("_")
  sub = {"conv": 0, "bn": 1}[name]
  return f"model{idx}.{sub}.{_LEAF_TO_TORCH[path[-1]]}"


@functools.lru_cache(maxsize=16)
def _discriminator_shapes(input_nc: int, ndf: int, n_layers: int) -> Variables:
  d = NLayerDiscriminator(input_nc=input_nc, ndf=ndf, n_layers=n_layers)
  x = jax.ShapeDtypeStruct((1, 32, 32, input_nc), jnp.float32)
  return jax.eval_shape(functools.partial(d.init, train=False), jax.random.key(0), x)


def discriminator_variables_from_torch(state_dict: Mapping[str, Any]) -> Variables:
  """Official LaMa/pix2pixHD `NLayerDiscriminator` state_dict -> our variables.

  input_nc and ndf come from `model0.0.weight`, n_layers from the number of
  `model{n}` stages. Keys may carry a `discriminator.` prefix.

  Returns:
    {"params": ..., "batch_stats": ...} for
    `NLayerDiscriminator(input_nc, ndf, n_layers)`.

  Raises:
    ValueError: listing missing keys, unexpected keys and shape mismatches.
  """
  sd = _strip_prefix(state_dict, "discriminator.")
  stages = {int(m.group(1)) for k in sd if (m := re.match(r"model(\d+)\.", k))}
  n_layers = max(max(stages, default=5) - 1, 1)
  first = sd.get("model0.0.weight")
  ndf, input_nc = (64, 3) if first is None else tuple(_to_numpy(first).shape[:2])
  expected = _discriminator_shapes(input_nc, ndf, n_layers)
  return _convert_from_torch(sd, expected, _disc_key, lambda p: False,
                             f"NLayerDiscriminator(ndf={ndf}, n_layers={n_layers})")


def discriminator_variables_to_torch(variables: Mapping[str, Any], *,
                                     num_batches_tracked: int | None = None
                                     ) -> dict[str, np.ndarray]:
  """Inverse of `discriminator_variables_from_torch` (see the generator's)."""
  return _convert_to_torch(variables, _disc_key, lambda p: False, num_batches_tracked)
