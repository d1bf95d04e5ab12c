"""DPNet's inference adapter: the uniform convention is DPNet's own.

The generator takes RGB in [0, 1] and a mask with 1 = hole, and needs H and W to be
multiples of 2**levels (its skip concatenations halve exactly), so the shared inpaint code
pads the image and mask symmetrically on the bottom / right to that multiple, runs the
network and crops back. Region normalisation has no running statistics: its statistics are
those of the image being inpainted (padding included), as in training.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import ml_collections

from inpaint_jax.models.api import Adapter
from inpaint_jax.registry import INPAINTERS


@INPAINTERS.register("dpnet")
def dpnet_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """Adapter for `generator.name == "dpnet"` (see the module docstring)."""
  factor = 2 ** len(config.generator.widths)

  def forward(g_model: nn.Module, variables, image: jax.Array, mask: jax.Array) -> jax.Array:
    return g_model.apply(variables, image, mask, train=False)["pred"]

  return Adapter(forward=forward, size_multiple=factor, pad_mode="symmetric")
