"""VGG-16 / VGG-19 feature extractor in torchvision's layout (Flax linen, NHWC).

The `features` part of torchvision's `vgg16` / `vgg19` (configurations D and E of
Simonyan & Zisserman): 3x3 convolutions with padding 1 and ReLU, and 2x2 max pooling with
stride 2, 13 / 16 convolutions, 14,714,688 / 20,024,384 parameters. The conv at
torchvision index i is the Flax submodule `features_<i>`, so `features.<i>.weight` /
`.bias` map one to one (`params_from_torch`). The classifier is not included.

`VGG(depth, outputs)` returns a dict of the activations at the requested named layers:
`conv<b>_<k>`, `relu<b>_<k>` (block b = 1..5, conv k within the block) and `pool<b>`, e.g.
`relu1_2`, `relu3_3`, `pool3`, `relu5_4` (VGG-19). Layers after the last requested one are
not run. Used by LPIPS (`inpaint_jax.metrics.lpips`) and by perceptual losses.

Inputs are NHWC floats. With `imagenet_normalize=True` the module expects RGB in [0, 1]
and applies torchvision's ImageNet mean/std first; by default it takes the input as is
(LPIPS applies its own scaling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from inpaint_jax.backbones import files, frozen
from inpaint_jax.registry import BACKBONES

# Channels per conv of each block; "M" (a pool) ends every block.
CONFIGS: dict[int, tuple[tuple[int, ...], ...]] = {
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512),
         (512, 512, 512, 512)),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_table(depth: int) -> list[tuple[str, int, str]]:
  """[(layer name, torchvision features index, kind)] in order; kind is conv/relu/pool."""
  if depth not in CONFIGS:
    raise ValueError(f"VGG depth must be one of {sorted(CONFIGS)}, got {depth}")
  table, i = [], 0
  for b, block in enumerate(CONFIGS[depth], start=1):
    for k in range(1, len(block) + 1):
      table += [(f"conv{b}_{k}", i, "conv"), (f"relu{b}_{k}", i + 1, "relu")]
      i += 2
    table.append((f"pool{b}", i, "pool"))
    i += 1
  return table


def layer_names(depth: int = 16) -> list[str]:
  return [name for name, _, _ in layer_table(depth)]


class VGG(nn.Module):
  """torchvision VGG `features`, returning named intermediate activations.

  Attributes:
    depth: 16 or 19.
    outputs: names of the layers to return (see `layer_names`).
    imagenet_normalize: subtract ImageNet mean / divide by std (input RGB in [0, 1]).
    dtype: computation dtype.
    pooling: "max" (torchvision) or "avg": LaMa's VGG-19 perceptual loss replaces
      every max pool by a 2x2 average pool (same parameters).
  """

  depth: int = 16
  outputs: Sequence[str] = ("relu5_3",)
  imagenet_normalize: bool = False
  dtype: Any = jnp.float32
  pooling: str = "max"

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """(N, H, W, 3) -> {name: (N, H / 2^p, W / 2^p, C)} for each requested layer."""
    table = layer_table(self.depth)
    names = [t[0] for t in table]
    unknown = [o for o in self.outputs if o not in names]
    if unknown or not self.outputs:
      raise ValueError(f"unknown VGG-{self.depth} layer(s) {unknown or '(none)'}; accepted: "
                       f"{', '.join(names)}")
    last = max(names.index(o) for o in self.outputs)
    channels = dict(zip([n for n, _, kind in table if kind == "conv"],
                        [c for block in CONFIGS[self.depth] for c in block], strict=True))
    x = x.astype(self.dtype)
    if self.imagenet_normalize:
      x = (x - jnp.asarray(IMAGENET_MEAN, self.dtype)) / jnp.asarray(IMAGENET_STD, self.dtype)
    out = {}
    for name, index, kind in table[:last + 1]:
      if kind == "conv":
        x = nn.Conv(channels[name], (3, 3), padding=((1, 1), (1, 1)),
                    dtype=self.dtype, name=f"features_{index}")(x)
      elif kind == "relu":
        x = nn.relu(x)
      else:
        # torchvision MaxPool2d(2, 2): floor mode, an odd last row / column is dropped.
        pool = nn.avg_pool if self.pooling == "avg" else nn.max_pool
        x = pool(x, (2, 2), strides=(2, 2))
      if name in self.outputs:
        out[name] = x
    return out


def conv_indices(depth: int) -> list[int]:
  return [index for _, index, kind in layer_table(depth) if kind == "conv"]


def params_from_torch(state_dict: Mapping[str, Any], depth: int = 16,
                      prefix: str = "features.") -> dict[str, Any]:
  """Flax params of `VGG(depth)` from a torchvision VGG state_dict.

  Args:
    state_dict: {name: array}, e.g. from `inpaint_jax.weights.torch_file.load_state_dict` of
      torchvision's `vgg16-397923af.pth` (keys `features.<i>.weight` / `.bias`; classifier
      keys are ignored).
    depth: 16 or 19.
    prefix: the key prefix of the feature layers.

  Returns:
    {"features_<i>": {"kernel": (3, 3, I, O), "bias": (O,)}} float32 numpy arrays.

  Raises:
    ValueError: a missing key or a wrong shape, naming the key.
  """
  params = {}
  c_in = 3
  for index, c_out in zip(conv_indices(depth), [c for blk in CONFIGS[depth] for c in blk],
                          strict=True):
    w_key, b_key = f"{prefix}{index}.weight", f"{prefix}{index}.bias"
    for key in (w_key, b_key):
      if key not in state_dict:
        raise ValueError(f"VGG-{depth} weights: key {key!r} is missing (expected torchvision "
                         f"'features.<i>.weight/bias' keys)")
    w = np.asarray(state_dict[w_key], np.float32)
    b = np.asarray(state_dict[b_key], np.float32)
    if w.shape != (c_out, c_in, 3, 3) or b.shape != (c_out,):
      raise ValueError(f"VGG-{depth} weights: {w_key!r} has shape {w.shape}, expected "
                       f"{(c_out, c_in, 3, 3)}")
    params[f"features_{index}"] = {"kernel": w.transpose(2, 3, 1, 0), "bias": b}
    c_in = c_out
  return params


def load_torchvision(path: str, depth: int = 16, field: str = "path") -> dict[str, Any]:
  """`{"params": ...}` of `VGG(depth)` from a torchvision file, a `.npz` or a converted dir.

  The torchvision file is read without torch; a converted directory holds `vgg<depth>.npz`.
  """
  return files.load_variables(f"vgg{depth}", path, field,
                              lambda sd: variables_from_torch(sd, depth))


# `path=RANDOM_WEIGHTS`: seeded random weights instead of the published ones, so that a
# CPU demo or a test without the (downloaded) ImageNet weights still computes and logs
# every VGG term. A perceptual loss on a random network is not the published recipe.
RANDOM_WEIGHTS = "random"


def random_variables(depth: int, seed: int = 0) -> dict[str, Any]:
  """`{"params": ...}` of every layer of `VGG(depth)`, Flax's default init from `seed`."""
  logging.warning("VGG-%d with random weights (path=%r): the perceptual and style terms "
                  "are not the published ones.", depth, RANDOM_WEIGHTS)
  module = VGG(depth, (layer_names(depth)[-1],))
  variables = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, 32, 32, 3), jnp.float32))
  return {"params": jax.tree.map(np.asarray, variables["params"])}


def variables_from_torch(state_dict: Mapping[str, Any], depth: int) -> dict[str, Any]:
  """`{"params": ...}` of `VGG(depth)` from a torchvision state_dict."""
  return {"params": params_from_torch(state_dict, depth)}


def _register(depth: int) -> None:
  @BACKBONES.register(f"vgg{depth}")
  def build(cfg: Mapping[str, Any]) -> frozen.Backbone:
    """Frozen VGG: cfg {path, outputs=("relu5_<k>",), imagenet_normalize=False}."""
    cfg = dict(cfg)
    path = cfg.pop("path", "")
    field = cfg.pop("field", f"frozen.<vgg{depth}>")
    outputs = tuple(cfg.pop("outputs", (layer_names(depth)[-2],)))
    norm = bool(cfg.pop("imagenet_normalize", False))
    if cfg:
      raise ValueError(f"config field(s) {', '.join(sorted(cfg))} of a vgg{depth} backbone: "
                       "unknown; accepted: kind, path, outputs, imagenet_normalize")
    module = VGG(depth, outputs, imagenet_normalize=norm)
    if path == RANDOM_WEIGHTS:
      return frozen.Backbone(module=module, load=lambda: random_variables(depth))
    return frozen.Backbone(module=module, load=lambda: load_torchvision(path, depth, field))


_register(16)
_register(19)
