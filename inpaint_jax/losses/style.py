"""Gram-matrix style loss (Gatys et al.; as PConv, RFR-Net, DFNet and DCF use it)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from inpaint_jax.losses.perceptual import VGG16_POOL123, distance_fn, vgg_features
from inpaint_jax.losses.recipe import LossInputs
from inpaint_jax.registry import LOSSES


def gram(f: jax.Array) -> jax.Array:
  """(N, H, W, C) -> (N, C, C): F^T F / (C * H * W), F the (H*W, C) feature matrix."""
  n, h, w, c = f.shape
  flat = f.reshape(n, h * w, c).astype(jnp.float32)
  return jnp.einsum("npc,npd->ncd", flat, flat) / (c * h * w)


@LOSSES.register("gram_style")
def gram_style(inputs: LossInputs, backbone: str = "vgg16",
               layers: Sequence[str] = VGG16_POOL123, distance: str = "l1",
               imagenet_normalize: bool = False, normalize_features: bool = False,
               pooling: str = "max"):
  """Style loss: Σ_layers mean distance(G(φ(pred)), G(φ(image))) over the N*C*C entries.

  Args:
    inputs: the loss inputs.
    backbone: the `frozen` entry holding a vgg16 / vgg19 backbone.
    layers: VGG layer names.
    distance: l1 (PConv / RFR / DFNet / DCF) | mse.
    imagenet_normalize: normalise the images with the ImageNet statistics first.
    normalize_features: L2-normalise features per pixel before the Gram (DCF).
    pooling: max | avg.

  Returns:
    (scalar, {layer: its value}).
  """
  dist = distance_fn(distance, "gram_style")
  fp, ft = vgg_features(inputs, backbone, layers, imagenet_normalize, pooling, "gram_style",
                        unit=normalize_features)
  per = {name: jnp.mean(dist(gram(fp[name]) - gram(ft[name]))) for name in layers}
  return jnp.sum(jnp.stack(list(per.values()))), per
