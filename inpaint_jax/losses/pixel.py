"""Pixel-space reconstruction losses.

Images are (N, H, W, 3) and the mask (N, H, W, 1) with 1 = hole. Unless a
docstring says otherwise, "mean" averages over every element (N * H * W * C),
holes and known pixels alike, which is how PConv, RFR-Net, DFNet, DCF and LaMa
normalise: a hole-only term is therefore small when the hole is small.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from inpaint_jax.losses.recipe import LossInputs, resize_bilinear
from inpaint_jax.registry import LOSSES

REGIONS = ("all", "hole", "known")


def abs_l1(x: jax.Array) -> jax.Array:
  """|x| whose gradient is sign(x), 0 at x = 0, as `torch.abs` (`jnp.abs` has 1 there).

  So an exact match (equal features, a clamped pixel) passes no gradient, as in
  the PyTorch code the recipes reproduce.
  """
  return x * jax.lax.stop_gradient(jnp.sign(x))


def region_weight(mask: jax.Array, region: str) -> jax.Array | float:
  """1 on the pixels a term supervises: `all`, `hole` (mask) or `known` (1 - mask)."""
  if region == "all":
    return 1.0
  if region == "hole":
    return mask
  if region == "known":
    return 1.0 - mask
  raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")


@LOSSES.register("masked_l1")
def masked_l1(inputs: LossInputs, weight_known: float = 1.0,
              weight_missing: float = 1.0) -> jax.Array:
  """LaMa's `masked_l1_loss` on the raw prediction.

  Per-pixel |pred - image| weighted by `mask * weight_missing + (1 - mask) *
  weight_known`, averaged over all N*H*W*3 elements (LaMa: known 10, missing 0,
  so only known pixels are supervised).
  """
  weights = inputs.mask * weight_missing + (1.0 - inputs.mask) * weight_known
  return jnp.mean(weights * abs_l1(inputs.pred - inputs.image))


@LOSSES.register("l1")
def l1(inputs: LossInputs) -> jax.Array:
  """Plain mean absolute error between prediction and image (DFNet's structure loss)."""
  return jnp.mean(abs_l1(inputs.pred - inputs.image))


@LOSSES.register("hole_l1")
def hole_l1(inputs: LossInputs) -> jax.Array:
  """PConv / RFR-Net hole loss: mean over all elements of |pred - image| * mask."""
  return jnp.mean(abs_l1(inputs.pred - inputs.image) * inputs.mask)


@LOSSES.register("valid_l1")
def valid_l1(inputs: LossInputs) -> jax.Array:
  """PConv / RFR-Net valid loss: mean over all elements of |pred - image| * (1 - mask)."""
  return jnp.mean(abs_l1(inputs.pred - inputs.image) * (1.0 - inputs.mask))


@LOSSES.register("charbonnier")
def charbonnier(inputs: LossInputs, eps: float = 1e-3, region: str = "all") -> jax.Array:
  """Charbonnier (smooth L1): mean sqrt((pred - image)^2 + eps^2) (DCF: eps 1e-3).

  Args:
    inputs: the loss inputs.
    eps: the smoothing constant; the gradient stays finite at d = 0.
    region: all | hole | known; the others count as zero in the mean.
  """
  d = inputs.pred - inputs.image
  return jnp.mean(jnp.sqrt(jnp.square(d) + eps * eps) * region_weight(inputs.mask, region))


# DFNet's TV kernel (cross-correlation, zero padding 1):
# D(x)[i, j] = x[i-1, j] + x[i, j-1] - 2 x[i, j].
_DFNET_TV_KERNEL = ((0.0, 1.0, 0.0), (1.0, -2.0, 0.0), (0.0, 0.0, 0.0))


@LOSSES.register("total_variation")
def total_variation(inputs: LossInputs, form: str = "rfr", region: str = "hole",
                    of: str = "pred") -> jax.Array:
  """Total variation in RFR-Net's or DFNet's form.

  * `rfr`: x = pred * w with w the region weight (RFR-Net: the composite times
    the hole mask, i.e. `output="composite", region="hole"`);
    mean |x[:, 1:] - x[:, :-1]| + mean |x[:, :, 1:] - x[:, :, :-1]|.
  * `dfnet`: mean |D(x) * w| with D the depthwise 3x3 kernel
    [[0, 1, 0], [1, -2, 0], [0, 0, 0]] (zero padding) and w the region weight
    (DFNet weights the known region, `region="known"`).

  Args:
    inputs: the loss inputs.
    form: rfr | dfnet.
    region: all | hole | known.
    of: `pred` (what a TV loss is meant to act on) or `target`: the official
      DFNet `loss.py` passes its targets to the TV term, so the term is a
      constant with zero gradient; `of="target"` reproduces that number.

  Returns:
    A scalar.
  """
  if of not in ("pred", "target"):
    raise ValueError(f"total_variation: of must be pred or target, got {of!r}")
  x = inputs.pred if of == "pred" else inputs.image
  w = region_weight(inputs.mask, region)
  if form == "rfr":
    x = x * w
    return (jnp.mean(abs_l1(x[:, 1:] - x[:, :-1])) +
            jnp.mean(abs_l1(x[:, :, 1:] - x[:, :, :-1])))
  if form == "dfnet":
    c = x.shape[-1]
    kernel = jnp.tile(jnp.asarray(_DFNET_TV_KERNEL, x.dtype)[:, :, None, None], (1, 1, 1, c))
    d = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=c)
    return jnp.mean(abs_l1(d * w))
  raise ValueError(f"total_variation: form must be rfr or dfnet, got {form!r}")


@LOSSES.register("multiscale_l1")
def multiscale_l1(inputs: LossInputs, key: str = "scales",
                  scales: Sequence[int] | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean over scales of the plain L1 to the resized image (DFNet / DCF reconstruction).

  Targets are the image resized bilinearly without anti-aliasing (PyTorch
  `F.interpolate(..., 'bilinear', align_corners=False)`) to each output's size.

  Args:
    inputs: `outputs[key]` is a list of (N, h_s, w_s, 3) outputs.
    key: the list output to read.
    scales: indices into that list (None: all of them).

  Returns:
    (mean over the chosen scales, {"s<i>": L1 at scale i}).
  """
  outs = inputs.outputs.get(key)
  if not isinstance(outs, list | tuple):
    raise ValueError(f"multiscale_l1: the generator returns no list output {key!r}")
  idx = list(range(len(outs))) if scales is None else [int(i) for i in scales]
  per = {}
  for i in idx:
    y = outs[i]
    t = resize_bilinear(inputs.image, *y.shape[1:3])
    per[f"s{i}"] = jnp.mean(abs_l1(y - t))
  return jnp.mean(jnp.stack(list(per.values()))), per
