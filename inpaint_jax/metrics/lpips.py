"""LPIPS (Zhang et al. 2018), VGG trunk, version 0.1, in Flax: the `lpips` package's metric.

For images x, y in [0, 1] (mapped to [-1, 1] as LaMa's evaluator does):

1. scale: `(v - shift) / scale` with shift (-0.030, -0.088, -0.188) and scale
   (0.458, 0.448, 0.450) (`ScalingLayer`, version 0.1);
2. VGG-16 features (`inpaint_jax.models.vgg`) at relu1_2, relu2_2, relu3_3, relu4_3,
   relu5_3;
3. per layer: unit-normalise over channels (`f / (||f|| + 1e-10)`), squared difference,
   a 1x1 convolution to one channel without bias (`lin<k>`, the calibrated weights),
   mean over the image;
4. sum over the five layers: one distance per image pair (lower = more alike).

Weights: the VGG-16 trunk from torchvision's ImageNet file and the linear layers from
the `lpips` wheel (`lpips/weights/v0.1/vgg.pth`), converted by `convert_from_torch` (or
`python -m inpaint_jax.convert lpips`) into one `.npz`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inpaint_jax.backbones import vgg
from inpaint_jax.weights import params_file, torch_file

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
KIND = "lpips_vgg_v0.1"


class LPIPS(nn.Module):
  """LPIPS-VGG v0.1 distance of image pairs.

  Call: `(x (N, H, W, 3), y (N, H, W, 3)) -> (N,)`, images in [0, 1], H and W >= 16.
  """

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    n = x.shape[0]
    shift, scale = jnp.asarray(SHIFT), jnp.asarray(SCALE)
    z = jnp.concatenate([x, y]).astype(jnp.float32) * 2 - 1   # one trunk pass for both
    feats = vgg.VGG(16, LAYERS, name="vgg")((z - shift) / scale)
    total = jnp.zeros((n,), jnp.float32)
    for k, (layer, c) in enumerate(zip(LAYERS, CHANNELS, strict=True)):
      f = feats[layer]
      f = f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + 1e-10)
      d = (f[:n] - f[n:]) ** 2
      w = self.param(f"lin{k}", nn.initializers.zeros, (c,))
      total = total + jnp.mean(jnp.einsum("nhwc,c->nhw", d, w,
                                          precision=jax.lax.Precision.HIGHEST), axis=(1, 2))
    return total


def params_from_torch(vgg_state_dict: Mapping[str, Any],
                      lin_state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """`LPIPS` params from torchvision VGG-16 weights and the lpips linear layers.

  Args:
    vgg_state_dict: torchvision `vgg16` state_dict (`features.<i>.weight/bias`).
    lin_state_dict: the lpips `vgg.pth` (`lin<k>.model.1.weight`, shape (1, C, 1, 1)).
  """
  params: dict[str, Any] = {"vgg": vgg.params_from_torch(vgg_state_dict, 16)}
  for k, c in enumerate(CHANNELS):
    key = f"lin{k}.model.1.weight"
    if key not in lin_state_dict:
      raise ValueError(f"LPIPS linear weights: key {key!r} is missing (expected the lpips "
                       "package's weights/v0.1/vgg.pth)")
    w = np.asarray(lin_state_dict[key], np.float32)
    if w.shape != (1, c, 1, 1):
      raise ValueError(f"LPIPS linear weights: {key!r} has shape {w.shape}, expected "
                       f"{(1, c, 1, 1)}")
    params[f"lin{k}"] = w.reshape(c)
  return params


def convert_from_torch(vgg_path: str, lin_path: str, output: str) -> str:
  """Reads the two PyTorch files (without torch) and writes the converted `.npz`."""
  params = params_from_torch(torch_file.load_state_dict(vgg_path),
                             torch_file.load_state_dict(lin_path))
  params_file.save_params(output, params, KIND)
  return output


@functools.partial(jax.jit)
def _apply(params, x, y):
  return LPIPS().apply({"params": params}, x, y)


def distance(params: Mapping[str, Any], x: jax.Array, y: jax.Array) -> jax.Array:
  """(N,) LPIPS of (N, H, W, 3) images in [0, 1] with converted `params`."""
  return _apply(params, x, y)


def load(path: str | os.PathLike[str]) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The LPIPS function `(x, y) -> (N,)` with the converted weights at `path`."""
  params = jax.device_put(params_file.load_params(path, KIND, what="LPIPS weights"))
  return functools.partial(distance, params)
