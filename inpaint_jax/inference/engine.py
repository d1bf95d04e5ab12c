"""The one eval pass of every family: pad, eval-mode forward, composite, crop.

Everything that runs a generator for its result goes through here: the inpaint command
(`Inpainter`), export (`composite`, traced into the exported program), evaluation and the
trainer's validation (`batch_inpainter`), the training sample grids and the benchmarks
(`predict`). Each family's `models.api.Adapter` says how its network takes the uniform
convention (image (N, H, W, 3) RGB in [0, 1], mask (N, H, W, 1), 1 = hole) and what size it
needs. Image and mask are padded on the bottom/right to that size rule with the adapter's
numpy pad mode, the result is composited as `mask * pred + (1 - mask) * image` and cropped
back, as LaMa's `bin/predict.py` does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from inpaint_jax.models import api

PyTree = Any


def ceil_to(x: int, multiple: int) -> int:
  return -(-x // multiple) * multiple


def padded_shape(adapter: api.Adapter, h: int, w: int, multiple: int | None = None
                 ) -> tuple[int, int]:
  """The (H, W) the network runs at: multiples of `multiple` (default: the size rule)."""
  multiple = multiple or adapter.size_multiple
  low = ceil_to(adapter.min_size, multiple)
  return max(low, ceil_to(h, multiple)), max(low, ceil_to(w, multiple))


def predict(adapter: api.Adapter, g_model: nn.Module, variables: PyTree, image: jax.Array,
            mask: jax.Array) -> dict[str, jax.Array]:
  """The eval pass, traceable: {"pred", "composite"}, each (N, H, W, 3).

  Args:
    adapter: the family's inference rule.
    g_model: the generator module.
    variables: its variables ({"params", "batch_stats", ...}).
    image: (N, H, W, 3) float in [0, 1]; H and W static.
    mask: (N, H, W, 1), 1 = hole (values > 0 count as hole).

  Returns:
    "pred", the network's prediction, and "composite", `mask * pred + (1 - mask) * image`,
    both cropped back to (N, H, W, 3). Padding (when H or W break the size rule) happens in
    the graph, with the adapter's pad mode.
  """
  h, w = image.shape[1], image.shape[2]
  image = image.astype(jnp.float32)
  mask = (mask > 0).astype(jnp.float32)
  # Symbolic sizes (a shape-polymorphic export) are multiples of the size rule by construction.
  static = isinstance(h, int) and isinstance(w, int)
  ph, pw = padded_shape(adapter, h, w) if static else (h, w)
  if static and (ph, pw) != (h, w):
    pad = ((0, 0), (0, ph - h), (0, pw - w), (0, 0))
    image_p = jnp.pad(image, pad, mode=adapter.pad_mode)
    mask_p = jnp.pad(mask, pad, mode=adapter.pad_mode)
  else:
    image_p, mask_p = image, mask
  pred = adapter.forward(g_model, variables, image_p, mask_p)
  out = mask_p * pred + (1.0 - mask_p) * image_p
  return {"pred": pred[:, :h, :w], "composite": out[:, :h, :w]}


def composite(adapter: api.Adapter, g_model: nn.Module, variables: PyTree, image: jax.Array,
              mask: jax.Array) -> jax.Array:
  """The composite (N, H, W, 3) of `predict`, traceable (export traces exactly this)."""
  return predict(adapter, g_model, variables, image, mask)["composite"]


@functools.lru_cache(maxsize=16)
def _jitted(adapter: api.Adapter, g_model: nn.Module):
  """`jit((variables, image, mask) -> composite)`, one per (adapter, module): both are frozen
  dataclasses, so equal configs share compiled programs; the weights are arguments, not
  constants, so new weights reuse the program."""
  return jax.jit(functools.partial(composite, adapter, g_model))


def composite_fn(config: ml_collections.ConfigDict, g_model: nn.Module
                 ) -> Callable[[PyTree, jax.Array, jax.Array], jax.Array]:
  """The jitted `(variables, image (N, H, W, 3), mask (N, H, W, 1)) -> composite`."""
  return _jitted(api.get_adapter(config), g_model)


def batch_inpainter(config: ml_collections.ConfigDict, g_model: nn.Module, variables: PyTree
                    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """`(images (B, S, S, 3), holes (B, S, S) in {0, 1}) -> composites (B, S, S, 3)` numpy."""
  fn = composite_fn(config, g_model)

  def run(images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    out = fn(variables, jnp.asarray(images), jnp.asarray(holes[..., None], jnp.float32))
    return np.asarray(out, np.float32)

  return run


def pad_bottom_right(x: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
  """(H, W, C) -> (shape[0], shape[1], C), padding bottom/right with numpy `mode`."""
  h, w = x.shape[:2]
  if (h, w) == tuple(shape):
    return x
  return np.pad(x, ((0, shape[0] - h), (0, shape[1] - w), (0, 0)), mode=mode)


@dataclasses.dataclass
class Pending:
  """A dispatched pass: the device result and the size to crop it back to."""

  composite: jax.Array
  size: tuple[int, int]

  def result(self) -> np.ndarray:
    h, w = self.size
    return np.asarray(self.composite)[0, :h, :w]


class Inpainter:
  """Runs a generator on single images of any size in the uniform convention.

  Images are padded on the host to a shape bucket, so that a folder of mixed sizes compiles
  once per bucket, and the padded pass is `composite` above.

  Args:
    config: the run config (picks the adapter by `generator.name`).
    g_model: the generator module.
    variables: its variables (host or device arrays).
    bucket: pad H and W up to multiples of this (a multiple of the adapter's size rule);
      None: the size rule itself, so sizes that meet it are not padded.
  """

  def __init__(self, config: ml_collections.ConfigDict, g_model: nn.Module, variables: PyTree,
               bucket: int | None = None):
    self.config = config
    self.g_model = g_model
    self.adapter = api.get_adapter(config)
    rule = self.adapter.size_multiple
    if bucket is not None and (bucket <= 0 or bucket % rule):
      raise ValueError(f"--bucket {bucket}: must be a positive multiple of {rule} (this "
                       f"model's size rule)")
    self.multiple = bucket or rule
    self.variables = jax.device_put(variables)
    self._composite = composite_fn(config, g_model)

  def padded_shape(self, h: int, w: int) -> tuple[int, int]:
    return padded_shape(self.adapter, h, w, self.multiple)

  def submit(self, image: np.ndarray, mask: np.ndarray) -> Pending:
    """Dispatches one pass without waiting: image (H, W, 3), mask (H, W, 1) in {0, 1}."""
    h, w = image.shape[:2]
    shape = self.padded_shape(h, w)
    mode = self.adapter.pad_mode
    img = pad_bottom_right(np.asarray(image, np.float32), shape, mode)[None]
    msk = pad_bottom_right(np.asarray(mask, np.float32), shape, mode)[None]
    return Pending(self._composite(self.variables, jnp.asarray(img), jnp.asarray(msk)), (h, w))

  def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The composite (H, W, 3) float32; an empty mask returns the image itself."""
    if not np.any(mask):
      return np.asarray(image, np.float32)
    return self.submit(image, mask).result()
