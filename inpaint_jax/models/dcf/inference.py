"""DCF's inference adapter: the uniform convention in, DCF's conventions inside.

The inpaint command passes RGB in [0, 1] and a mask with 1 = hole, which is DCF's mask
convention. The generator itself maps the image to its value range (ImageNet-normalised
for the official weights, [-1, 1] with `value_range=symmetric`) and its tanh output back
to [0, 1], so the adapter only enforces the size rule: H and W at least 16 (four 2x2
pools), smaller inputs padded. Any other size runs as it is: the decoder resizes
bilinearly, as the official network does for odd sizes. The official evaluation clamps
de-normalised outputs to [0, 1]; the prediction is clamped likewise before the shared
code composites it with the known pixels.

The official `inference.py` cannot run (it imports a class `network.py` does not define);
this adapter is what it would do: one eval-mode pass of `OptimizedDCFInpaintingNetwork`
on `image * (1 - mask)`, with the importance gates DCF computes itself.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from inpaint_jax.models.api import Adapter
from inpaint_jax.registry import INPAINTERS

MIN_SIZE = 16


@INPAINTERS.register("dcf")
def dcf_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """Adapter for `generator.name == "dcf"` (see the module docstring)."""
  del config

  def forward(g_model: nn.Module, variables, image: jax.Array, mask: jax.Array) -> jax.Array:
    pred = g_model.apply(variables, image, mask, train=False)["pred"]
    return jnp.clip(pred, 0.0, 1.0)

  return Adapter(forward=forward, size_multiple=1, min_size=MIN_SIZE)
