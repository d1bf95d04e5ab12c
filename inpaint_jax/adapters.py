"""Inference adapters: how each family's generator runs on the command line's convention.

The inpaint and export commands speak one convention whatever the family: image RGB float in
[0, 1], mask 1 (white, non-zero in files) = hole. An adapter translates it to what its
generator expects (mask 1 = known, ImageNet normalisation, BGR, a size multiple, ...) and
back. Families register a builder under their `generator.name` in `registry.INPAINTERS`:

    @INPAINTERS.register("dfnet")
    def dfnet_adapter(config) -> Adapter:
      def forward(g_model, variables, image, mask):
        out = g_model.apply(variables, image[..., ::-1], 1.0 - mask, train=False)
        return out["pred"][..., ::-1]
      return Adapter(size_multiple=2 ** config.generator.depth, forward=forward)

The shared code pads image and mask on the bottom/right to the size multiple (numpy
`pad_mode`), calls `forward`, composites `mask * pred + (1 - mask) * image` and crops back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import ml_collections

from inpaint_jax import system as system_lib
from inpaint_jax.registry import INPAINTERS

PyTree = Any
# (g_model, variables, image (N, H, W, 3) RGB in [0, 1], mask (N, H, W, 1) 1 = hole)
#   -> raw prediction (N, H, W, 3) RGB in [0, 1]; H and W are multiples of `size_multiple`.
ForwardFn = Callable[[nn.Module, PyTree, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Adapter:
  """A family's inference rule.

  Attributes:
    forward: the eval-mode pass in the uniform convention (jit-able, see `ForwardFn`).
    size_multiple: the network's H and W must be multiples of it.
    pad_mode: numpy `np.pad` mode for the bottom/right padding to `size_multiple`.
    min_size: smaller inputs are padded up to it (LaMa: its bottleneck must be at least 2x2
      for the reflect padding of the residual blocks).
    refine: optional LaMa-style refinement, `(g_model, variables, config, image (H, W, 3),
      mask (H, W, 1), **options) -> composite (H, W, 3)` numpy; None: `--refine` is refused.
  """

  forward: ForwardFn
  size_multiple: int
  pad_mode: str = "symmetric"
  min_size: int = 1
  refine: Callable[..., Any] | None = None


def get_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """The adapter registered for `config.generator.name`."""
  return INPAINTERS.get(config.generator.name, field="generator.name")(config)


def _lama_forward(g_model: nn.Module, variables: PyTree, image: jax.Array,
                  mask: jax.Array) -> jax.Array:
  return system_lib.predict(g_model, variables, image, mask)["pred"]


@INPAINTERS.register("ffc_resnet")
def lama_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """LaMa: the uniform convention already; padding as `bin/predict.py` (symmetric, x8)."""
  from inpaint_jax import refine  # pylint: disable=g-import-not-at-top

  factor = 2 ** int(config.generator.get("n_downsampling", 3))
  return Adapter(forward=_lama_forward, size_multiple=max(8, factor), pad_mode="symmetric",
                 min_size=2 * factor, refine=refine.refine_lama)


# Families whose adapter lives beside their model code register on import.
from inpaint_jax import (  # noqa: E402  pylint: disable=g-import-not-at-top
    dcf_adapter,  # noqa: F401
    dfnet_adapter,  # noqa: F401
    dgfnet_adapter,  # noqa: F401
    dpnet_adapter,  # noqa: F401
    rfr_adapter,  # noqa: F401
)
