"""LaMa's inference adapter: the uniform convention already; padding as `bin/predict.py`.

Image and mask are padded symmetrically on the bottom/right to a multiple of 8 (or of
2**n_downsampling when that is larger), the bottleneck is kept at least 2x2 for the reflect
padding of the residual blocks, and `--refine` runs LaMa's refinement (`refine.refine_lama`).
"""

from __future__ import annotations

import ml_collections

from inpaint_jax.models.api import Adapter, default_forward
from inpaint_jax.models.lama import refine
from inpaint_jax.registry import INPAINTERS


@INPAINTERS.register("ffc_resnet")
def lama_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """Adapter for `generator.name == "ffc_resnet"` (lama-fourier, big-lama, the study)."""
  factor = 2 ** int(config.generator.get("n_downsampling", 3))
  return Adapter(forward=default_forward, size_multiple=max(8, factor), pad_mode="symmetric",
                 min_size=2 * factor, refine=refine.refine_lama)
