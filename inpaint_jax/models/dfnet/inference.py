"""DFNet's inference adapter: the uniform convention in, DFNet's conventions inside.

The inpaint command passes RGB in [0, 1] and a mask with 1 = hole; this adapter
* flips RGB to BGR (and the prediction back) when `config.inference.channel_order` is
  `bgr`, the order the released checkpoints were run in by the official test script;
* lets the generator turn the mask into DFNet's 1 = known (the module does that);
* follows the official test path for sizes the network cannot take (H or W not a
  multiple of 2**levels): it *resizes* (bilinear, no anti-aliasing, as `cv2.resize`
  does for the official script) image and mask to the nearest valid size, re-binarises
  the mask at 0.5, runs the network and resizes the prediction back. The official script
  resizes every input to 512 (or 256) whatever its size; we only resize when needed, so
  valid sizes run at their own resolution and match the module's output exactly.
The shared inpaint code then composites with the original image, so known pixels stay
untouched.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from inpaint_jax.models.api import Adapter
from inpaint_jax.models.dfnet.network import resize_bilinear
from inpaint_jax.registry import INPAINTERS


def valid_size(size: int, factor: int) -> int:
  """The multiple of `factor` nearest to `size` (at least `factor`)."""
  return max(factor, int(round(size / factor)) * factor)


@INPAINTERS.register("dfnet")
def dfnet_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """Adapter for `generator.name == "dfnet"` (see the module docstring)."""
  factor = 2 ** len(config.generator.en_ksize)
  inference = config.get("inference") or {}
  bgr = inference.get("channel_order", "rgb") == "bgr"

  def forward(g_model: nn.Module, variables, image: jax.Array, mask: jax.Array) -> jax.Array:
    h, w = image.shape[1:3]
    th, tw = valid_size(h, factor), valid_size(w, factor)
    x, m = image, mask
    if (th, tw) != (h, w):
      x = resize_bilinear(image, th, tw)
      m = (resize_bilinear(mask, th, tw) > 0.5).astype(mask.dtype)
    if bgr:
      x = x[..., ::-1]
    pred = g_model.apply(variables, x, m, train=False)["pred"]
    if bgr:
      pred = pred[..., ::-1]
    if (th, tw) != (h, w):
      pred = jnp.clip(resize_bilinear(pred, h, w), 0.0, 1.0)
    return pred

  return Adapter(forward=forward, size_multiple=1)
