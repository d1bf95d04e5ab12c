"""The ADE20k ResNet-50-dilated segmentation encoder (CSAIL), as LaMa's HRFPL uses it.

The encoder of CSAIL's `ade20k-resnet50dilated-ppm_deepsup` scene-parsing model
(Zhou et al., semantic-segmentation-pytorch), which LaMa's high-receptive-field
perceptual loss (`ResNetPL`) reads:

* a "deep stem" of three 3x3 convolutions 3 -> 64 (stride 2) -> 64 -> 128, each
  with BatchNorm and ReLU, then a 3x3 max pool with stride 2 and padding 1;
* Bottleneck stages [3, 4, 6, 3] with 64 / 128 / 256 / 512 planes (expansion
  4, the stride on the 3x3 convolution);
* dilation instead of downsampling in layer3 and layer4 (CSAIL's
  `_nostride_dilate`): their strided convolutions get stride 1, the first 3x3
  of layer3 / layer4 dilation 1 / 2, every other 3x3 of layer3 / layer4
  dilation 2 / 4, so the output stride is 8.

No average pool and no classifier. `ResNet50Dilated()(x, train=...)` returns
the four stage outputs (layer1..layer4): (N, H/4, W/4, 256),
(N, H/8, W/8, 512), (N, H/8, W/8, 1024), (N, H/8, W/8, 2048) for an
(N, H, W, 3) input (H, W multiples of 8). 23,631,808 parameters
(`PARAM_COUNT`, the same as the CSAIL encoder's).

Submodule names follow the PyTorch state_dict (`layer1.0.downsample.1.weight`
is `layer1_0/downsample_1/scale`), so converting the published file
(`variables_from_torch`: `encoder_epoch_20.pth`, a plain state_dict; a `module.` prefix is
stripped; keys the encoder lacks are ignored as LaMa's `strict=False` load does; a missing key
or a wrong shape is an error) is a renaming plus the OIHW -> HWIO transpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from inpaint_jax.backbones import files, frozen
from inpaint_jax.models.layers import Conv
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.registry import BACKBONES

STAGES = (3, 4, 6, 3)
PLANES = (64, 128, 256, 512)
EXPANSION = 4
# Parameters of the CSAIL `resnet50dilated` encoder (convolutions without bias,
# BatchNorm scale and bias; running statistics are not parameters): torchvision's
# ResNet-50 without its classifier has 23,508,032; the deep stem and the 128-channel
# input of layer1 add 123,776.
PARAM_COUNT = 23_631_808


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), BN after each, residual, ReLU.

  Attributes:
    planes: width of the inner convolutions; the output has 4 * planes.
    stride: stride of the 3x3 convolution (and of the 1x1 downsample).
    dilation: dilation (= padding) of the 3x3 convolution.
    downsample: project the input with a 1x1 convolution + BN.
    dtype: computation dtype.
  """

  planes: int
  stride: int = 1
  dilation: int = 1
  downsample: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """(N, H, W, C) -> (N, H / stride, W / stride, 4 * planes)."""
    conv = lambda f, k, s=1, d=1, name=None: Conv(
        f, k, strides=s, padding=d * (k // 2), kernel_dilation=d, use_bias=False,
        dtype=self.dtype, name=name)
    out = conv(self.planes, 1, name="conv1")(x)
    out = nn.relu(BatchNorm(dtype=self.dtype, name="bn1")(out, train=train))
    out = conv(self.planes, 3, self.stride, self.dilation, name="conv2")(out)
    out = nn.relu(BatchNorm(dtype=self.dtype, name="bn2")(out, train=train))
    out = conv(self.planes * EXPANSION, 1, name="conv3")(out)
    out = BatchNorm(dtype=self.dtype, name="bn3")(out, train=train)
    residual = x
    if self.downsample:
      residual = conv(self.planes * EXPANSION, 1, self.stride, name="downsample_0")(x)
      residual = BatchNorm(dtype=self.dtype, name="downsample_1")(residual, train=train)
    return nn.relu(out + residual)


def stage_plan(stages: Sequence[int] = STAGES) -> list[list[tuple[int, int]]]:
  """[(stride, dilation) per block] per stage, after CSAIL's `_nostride_dilate`."""
  plan = []
  for i, n in enumerate(stages):
    stride = 1 if i == 0 else 2
    first, rest = (stride, 1), (1, 1)
    if i == 2:      # layer3: dilate 2
      first, rest = (1, 1), (1, 2)
    elif i == 3:    # layer4: dilate 4
      first, rest = (1, 2), (1, 4)
    plan.append([first] + [rest] * (n - 1))
  return plan


class ResNet50Dilated(nn.Module):
  """CSAIL's ResNet-50 (deep stem) encoder with output stride 8.

  Attributes:
    stages: Bottleneck blocks per stage; (3, 4, 6, 3) is ResNet-50. Fewer
      blocks make the same layer types cheaper (for tests).
    dtype: computation dtype (None: float32 params and inputs).
  """

  stages: Sequence[int] = STAGES
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, ...]:
    """(N, H, W, 3) (already normalised) -> the 4 stage outputs, see the module doc.

    Args:
      x: (N, H, W, 3).
      train: BatchNorm with batch statistics (pass `mutable=['batch_stats']`;
        without it the running statistics are used, see `models.norm`).
    """
    for i, (c_out, s) in enumerate(((64, 2), (64, 1), (128, 1)), start=1):
      x = Conv(c_out, 3, strides=s, padding=1, use_bias=False, dtype=self.dtype,
               name=f"conv{i}")(x)
      x = nn.relu(BatchNorm(dtype=self.dtype, name=f"bn{i}")(x, train=train))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    feats = []
    c_in = 128
    for i, blocks in enumerate(stage_plan(self.stages)):
      planes = PLANES[i]
      for j, (stride, dilation) in enumerate(blocks):
        down = j == 0 and (stride != 1 or c_in != planes * EXPANSION)
        x = Bottleneck(planes, stride, dilation, down, dtype=self.dtype,
                       name=f"layer{i + 1}_{j}")(x, train=train)
        c_in = planes * EXPANSION
      feats.append(x)
    return tuple(feats)


def variable_shapes(stages: Sequence[int] = STAGES) -> Any:
  """The variables' shapes ({"params", "batch_stats"}) without allocating them."""
  module = ResNet50Dilated(tuple(stages))
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                            jnp.zeros((1, 32, 32, 3)), train=False))


# --- the published weights ------------------------------------------------------------

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
                         stages: Sequence[int] = STAGES) -> dict[str, Any]:
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
              variable_shapes(stages).items()}
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


def load_variables(path: str, field: str = "frozen.<ade20k_resnet50>",
                   stages: Sequence[int] = STAGES) -> dict[str, Any]:
  """{"params", "batch_stats"} from `encoder_epoch_20.pth`, a converted `.npz` or directory."""
  return files.load_variables(KIND, path, field,
                              lambda sd: variables_from_torch(sd, stages))


@BACKBONES.register(KIND)
def build(cfg: Mapping[str, Any]) -> frozen.Backbone:
  """Frozen ADE20k ResNet-50-dilated encoder: cfg {path, stages=(3, 4, 6, 3)}."""
  cfg = dict(cfg)
  path = cfg.pop("path", "")
  stages = tuple(int(n) for n in cfg.pop("stages", STAGES))
  field = cfg.pop("field", "frozen.<ade20k_resnet50>")
  if cfg:
    raise ValueError(f"config field(s) {', '.join(sorted(cfg))} of {field} (an "
                     "ade20k_resnet50 backbone): unknown; accepted: kind, path, stages")
  return frozen.Backbone(module=ResNet50Dilated(stages),
                         load=lambda: load_variables(path, field, stages))

