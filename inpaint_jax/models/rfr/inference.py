"""RFR-Net's inference adapter: the uniform convention in, RFR-Net's conventions inside.

The inpaint command passes RGB in [0, 1] and a mask with 1 = hole. RFR-Net itself wants
the masked image and a 3-channel mask with 1 = known; the generator module builds both
from the uniform inputs, so the adapter only handles the size rule: H and W must be
multiples of 16. Other sizes are padded on the bottom and right to the next multiple of
16 with numpy's `symmetric` mode (a mirror that repeats the edge pixel), image and mask
alike, so the padding holds mirrored known pixels (and mirrored holes) rather than a
black or unknown band the partial convolutions would renormalise across. The prediction
is cropped back and composited with the original image by the shared inference code, so
known pixels stay untouched. (The official test script resizes every input to the
training size instead; padding keeps each image at its own resolution, and sizes that are
already multiples of 16 run exactly as the module does.)

The raw output is linear and not clipped; the composite is what the command writes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import ml_collections

from inpaint_jax.models.api import Adapter
from inpaint_jax.models.rfr.network import SIZE_MULTIPLE
from inpaint_jax.registry import INPAINTERS


@INPAINTERS.register("rfr")
def rfr_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """Adapter for `generator.name == "rfr"` (see the module docstring)."""
  del config

  def forward(g_model: nn.Module, variables, image: jax.Array, mask: jax.Array) -> jax.Array:
    return g_model.apply(variables, image, mask, train=False)["pred"]

  return Adapter(forward=forward, size_multiple=SIZE_MULTIPLE, pad_mode="symmetric",
                 min_size=SIZE_MULTIPLE)
