"""DGFNet's inference adapter.

DGFNet takes the uniform convention itself (RGB in [0, 1], mask 1 = hole) and computes
its texture input (RTV of the masked image) inside. Its only rule is the size: H and W
must be multiples of 16 (RFR-Net's coarse branch and the four stride-2 DPFMs), so the
shared inpaint code pads the bottom / right symmetrically, runs the eval-mode network,
composites and crops back.
"""

from __future__ import annotations

import ml_collections

from inpaint_jax.models.api import Adapter, default_forward
from inpaint_jax.models.dgfnet.network import SIZE_FACTOR
from inpaint_jax.registry import INPAINTERS


@INPAINTERS.register("dgfnet")
def dgfnet_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """Adapter for `generator.name == "dgfnet"`: symmetric padding to a multiple of 16."""
  del config
  return Adapter(forward=default_forward, size_multiple=SIZE_FACTOR, pad_mode="symmetric",
                 min_size=SIZE_FACTOR)
