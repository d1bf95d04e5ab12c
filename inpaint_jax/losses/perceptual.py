"""Perceptual losses on frozen backbones: VGG feature distances and LaMa's HRFPL.

The backbone weights come from `inputs.frozen[backbone]` (a `frozen.FrozenNet`),
named in the config's `frozen` group, e.g.

  c.frozen.vgg16 = dict(kind="vgg16", path="/weights/vgg16-397923af.pth")
  c.losses.generator.perc = term("vgg_perceptual", 0.05, backbone="vgg16")

The layers each family uses (a term option, so one backbone serves every term):
  * DFNet, RFR-Net, DGFNet: VGG-16 pool1, pool2, pool3, [0, 1] input without
    ImageNet normalisation, mean L1 per layer summed over layers;
  * DCF: VGG-19 relu1_2, relu2_2, relu3_3 without normalisation, features
    L2-normalised per pixel (`normalize_features=True`);
  * LaMa's (switched-off) VGG loss: VGG-19 with average pooling, every ReLU up
    to relu5_1, ImageNet normalisation, MSE on the known region (`LAMA_VGG19`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from inpaint_jax.backbones.frozen import FrozenNet
from inpaint_jax.losses.pixel import abs_l1, region_weight
from inpaint_jax.losses.recipe import LossInputs, resize_bilinear
from inpaint_jax.registry import LOSSES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_POOL123 = ("pool1", "pool2", "pool3")
VGG19_RELU123 = ("relu1_2", "relu2_2", "relu3_3")
# LaMa's `PerceptualLoss`: the ReLUs of `vgg19.features[:30]`.
LAMA_VGG19 = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
              "relu3_4", "relu4_1", "relu4_2", "relu4_3", "relu4_4", "relu5_1")
_DISTANCES = {"l1": abs_l1, "mse": jnp.square}


def imagenet_normalize(x: jax.Array) -> jax.Array:
  """(x - mean) / std with torchvision's ImageNet statistics; x (N, H, W, 3) in [0, 1]."""
  return (x - jnp.asarray(IMAGENET_MEAN, x.dtype)) / jnp.asarray(IMAGENET_STD, x.dtype)


def frozen_net(inputs: LossInputs, backbone: str, term: str) -> FrozenNet:
  """`inputs.frozen[backbone]`, or a ValueError naming the config group to add."""
  if backbone not in inputs.frozen:
    raise ValueError(f"loss {term} reads the frozen backbone {backbone!r}, which the config "
                     f"does not list: add c.frozen.{backbone} = dict(kind=..., path=...) "
                     f"(listed: {', '.join(sorted(inputs.frozen)) or 'none'})")
  return inputs.frozen[backbone]


def distance_fn(distance: str, term: str):
  if distance not in _DISTANCES:
    raise ValueError(f"{term}: distance must be one of {', '.join(_DISTANCES)}, got {distance!r}")
  return _DISTANCES[distance]


def unit_channels(f: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Per-pixel L2 normalisation over channels, as `F.normalize(f, dim=1)`."""
  norm = jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True))
  return f / jnp.maximum(norm, eps)


def vgg_features(inputs: LossInputs, backbone: str, layers: Sequence[str], normalize: bool,
                 pooling: str, term: str, unit: bool = False,
                 ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """VGG features of pred and image at `layers`: ({name: (N, h, w, C)}, {same}).

  The two images go through the network as one batch (VGG has no batch
  statistics, so this changes nothing but the speed). With `unit`, every
  feature vector is L2-normalised per pixel (DCF's perceptual and style terms).
  """
  net = frozen_net(inputs, backbone, term)
  module = net.module.clone(outputs=tuple(layers), imagenet_normalize=False, pooling=pooling)
  x = jnp.concatenate([inputs.pred, inputs.image], axis=0)
  if normalize:
    x = imagenet_normalize(x)
  feats = module.apply(net.variables, x)
  if unit:
    feats = {k: unit_channels(v) for k, v in feats.items()}
  n = inputs.pred.shape[0]
  return ({k: v[:n] for k, v in feats.items()},
          {k: jax.lax.stop_gradient(v[n:]) for k, v in feats.items()})


def _reduce(per_layer: dict[str, jax.Array], how: str, term: str) -> jax.Array:
  stacked = jnp.stack(list(per_layer.values()))
  if how == "sum":
    return jnp.sum(stacked, axis=0)
  if how == "mean":
    return jnp.mean(stacked, axis=0)
  raise ValueError(f"{term}: layer_reduction must be sum or mean, got {how!r}")


@LOSSES.register("vgg_perceptual")
def vgg_perceptual(inputs: LossInputs, backbone: str = "vgg16",
                   layers: Sequence[str] = VGG16_POOL123, distance: str = "l1",
                   layer_reduction: str = "sum", imagenet_normalize: bool = False,
                   normalize_features: bool = False, pooling: str = "max",
                   region: str = "all", batch_reduction: str = "mean"):
  """VGG perceptual loss: Σ_layers mean distance(φ(pred), φ(image)).

  Args:
    inputs: the loss inputs; `pred` and `image` in [0, 1].
    backbone: the `frozen` entry holding a vgg16 / vgg19 backbone.
    layers: VGG layer names (`relu3_3`, `pool2`, ...).
    distance: l1 | mse, elementwise.
    layer_reduction: sum | mean over layers.
    imagenet_normalize: normalise both images with the ImageNet statistics first.
    normalize_features: L2-normalise features per pixel (DCF).
    pooling: max (torchvision) | avg (LaMa's VGG-19 loss).
    region: all | hole | known: weight the distance with the mask bilinearly
      resized to each layer (LaMa's VGG loss: known).
    batch_reduction: mean | sum over examples of the per-example loss (LaMa
      sums its VGG loss over the batch).

  Returns:
    (scalar, {layer: its value}).
  """
  dist = distance_fn(distance, "vgg_perceptual")
  fp, ft = vgg_features(inputs, backbone, layers, imagenet_normalize, pooling, "vgg_perceptual",
                        unit=normalize_features)
  per_layer = {}
  for name in layers:
    d = dist(fp[name] - ft[name])
    if region != "all":
      d = d * region_weight(resize_bilinear(inputs.mask, *d.shape[1:3]), region)
    per_layer[name] = jnp.mean(d, axis=(1, 2, 3))  # (N,)
  per_example = _reduce(per_layer, layer_reduction, "vgg_perceptual")
  if batch_reduction not in ("mean", "sum"):
    raise ValueError(f"vgg_perceptual: batch_reduction must be mean or sum, got "
                     f"{batch_reduction!r}")
  red = jnp.mean if batch_reduction == "mean" else jnp.sum
  return red(per_example), {k: red(v) for k, v in per_layer.items()}


@LOSSES.register("resnet_pl")
def resnet_pl(inputs: LossInputs, backbone: str = "resnet_pl", bn_mode: str = "train"):
  """LaMa's high-receptive-field perceptual loss (HRFPL, `ResNetPL`).

  Both images are ImageNet-normalised and run through the frozen ADE20k
  ResNet-50-dilated encoder; the loss is the sum over its 4 stages of the
  MSE (mean over all elements) between the prediction's and the image's
  features. LaMa weights it by 30.

  Args:
    inputs: the loss inputs; `pred` and `image` in [0, 1].
    backbone: the `frozen` entry holding an `ade20k_resnet50` backbone.
    bn_mode: train | eval. `train`: BatchNorm normalises with the statistics
      of the batch being encoded (prediction and image separately, in the
      trainer's BatchNorm groups), which is what the official run does:
      `ResNetPL` calls `.eval()` once, and Lightning's `model.train()` puts the
      encoder back in train mode; its running statistics would move but
      nothing reads them. `eval`: the stored running statistics.

  Returns:
    (scalar, {"layer1".."layer4": the per-stage MSE}).
  """
  net = frozen_net(inputs, backbone, "resnet_pl")
  if bn_mode not in ("train", "eval"):
    raise ValueError(f"resnet_pl: bn_mode must be train or eval, got {bn_mode!r}")

  def encode(x):
    x = imagenet_normalize(x)
    if bn_mode == "train":
      feats, _ = net(x, train=True, mutable=["batch_stats"])  # the updates are dropped
      return feats
    return net(x, train=False)

  pred_feats = encode(inputs.pred)
  target_feats = encode(inputs.image)
  per = {f"layer{i + 1}": jnp.mean(jnp.square(p - jax.lax.stop_gradient(t)))
         for i, (p, t) in enumerate(zip(pred_feats, target_feats, strict=True))}
  return jnp.sum(jnp.stack(list(per.values()))), per
