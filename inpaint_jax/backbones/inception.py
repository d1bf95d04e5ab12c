"""pytorch-fid's InceptionV3 (the FID network) up to the 2048-d pool3 features, in Flax.

This is `pytorch_fid.inception.InceptionV3(output_blocks=[3])` with its FID weights
(`pt_inception-2015-12-05`, ported from TensorFlow's 2015 Inception graph): torchvision's
InceptionV3 blocks with the FID patches:

* the average pools inside Mixed_5b-d, 6b-e and 7b exclude the zero padding from the
  mean (TensorFlow's behaviour, `count_include_pad=False`);
* Mixed_7c pools its branch with a 3x3 *max* pool (stride 1, padding 1), as the TF graph
  does.

Every convolution is torchvision's `BasicConv2d`: conv without bias, BatchNorm (eps
0.001, running statistics) and ReLU. Submodule names are the PyTorch attribute names
(`Mixed_6b/branch7x7_2/conv`), so the weight file's keys map one to one
(`variables_from_torch`). The classifier (`fc`) is not included.

Input: (N, H, W, 3) RGB in [0, 1]. As pytorch-fid does, it is resized to 299x299 with
bilinear interpolation (half-pixel centres, no antialiasing: `F.interpolate(...,
mode="bilinear", align_corners=False)`), then mapped to [-1, 1]. Output: (N, 2048).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

FID_SIZE = 299
BN_EPS = 1e-3


class BasicConv(nn.Module):
  """Conv (no bias) + BatchNorm (running statistics) + ReLU; torchvision `BasicConv2d`."""

  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, self.kernel, strides=(self.stride, self.stride),
                padding=((self.padding[0],) * 2, (self.padding[1],) * 2), use_bias=False,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
    return nn.relu(x)


def _avg3(x: jax.Array) -> jax.Array:
  # TF-style: the zero padding does not count in the mean.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max3s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, name="branch1x1")(x)
    b5 = BasicConv(48, name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, name="branch_pool")(_avg3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
    bd = BasicConv(64, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max3s2(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv(192, name="branch1x1")(x)
    b7 = BasicConv(c, name="branch7x7_1")(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c, name="branch7x7dbl_1")(x)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, name="branch_pool")(_avg3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv(192, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max3s2(x)], axis=-1)


class InceptionE(nn.Module):
  """InceptionE; `max_pool=True` is the FID graph's Mixed_7c (max instead of average)."""

  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, name="branch1x1")(x)
    b3 = BasicConv(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)],
                         -1)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg3(x)
    bp = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def resize_bilinear(x: jax.Array, size: int) -> jax.Array:
  """(N, H, W, C) -> (N, size, size, C), like `F.interpolate(bilinear, align_corners=False)`."""
  if x.shape[1:3] == (size, size):
    return x
  return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), method="bilinear",
                          antialias=False)


class FIDInceptionV3(nn.Module):
  """pytorch-fid InceptionV3 pool3 features.

  Attributes:
    resize_to: side the input is resized to (299 for FID; None keeps the input size,
      which must then be at least 75).
  """

  resize_to: int | None = FID_SIZE

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """(N, H, W, 3) in [0, 1] -> (N, 2048) float32."""
    x = x.astype(jnp.float32)
    if self.resize_to:
      x = resize_bilinear(x, self.resize_to)
    x = 2 * x - 1
    x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max3s2(x)
    x = BasicConv(80, name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max3s2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))


# Flax leaf -> (PyTorch suffix, transform of the torch array).
_LEAVES = {
    ("params", "kernel"): ("weight", lambda w: w.transpose(2, 3, 1, 0)),
    ("params", "scale"): ("weight", lambda w: w),
    ("params", "bias"): ("bias", lambda w: w),
    ("batch_stats", "mean"): ("running_mean", lambda w: w),
    ("batch_stats", "var"): ("running_var", lambda w: w),
}


def variables_from_torch(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """{"params", "batch_stats"} of `FIDInceptionV3` from pytorch-fid's weight file.

  Args:
    state_dict: {name: array} of `pt_inception-2015-12-05-*.pth` (or of any
      `pytorch_fid.inception.fid_inception_v3()` state_dict); `fc.*` and unused keys are
      ignored.

  Raises:
    ValueError: a missing key or a wrong shape, naming the key.
  """
  shapes = jax.eval_shape(lambda: FIDInceptionV3(resize_to=None).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3))))
  flat = traverse_util.flatten_dict(shapes)
  out = {}
  for path, leaf in flat.items():
    suffix, fn = _LEAVES[(path[0], path[-1])]
    key = ".".join(path[1:-1]) + "." + suffix
    if key not in state_dict:
      raise ValueError(f"FID Inception weights: key {key!r} is missing (expected pytorch-fid's "
                       "pt_inception-2015-12-05 file)")
    value = fn(np.asarray(state_dict[key], np.float32))
    if value.shape != leaf.shape:
      raise ValueError(f"FID Inception weights: {key!r} has shape {value.shape} after "
                       f"conversion, expected {leaf.shape}")
    out[path] = value
  return traverse_util.unflatten_dict(out)


def torch_keys(variables: Mapping[str, Any]) -> Sequence[str]:
  """The PyTorch keys the converter reads for `variables` (for messages and tests)."""
  return [".".join(p[1:-1]) + "." + _LEAVES[(p[0], p[-1])][0]
          for p in traverse_util.flatten_dict(dict(variables))]
