"""One inference engine for every family: pad, eval-mode forward, composite, crop.

`Inpainter` wraps a generator and its family's `adapters.Adapter`. It pads image and mask on
the bottom/right to the adapter's size multiple (or to a coarser shape bucket, so that a
folder of mixed sizes compiles once per bucket), runs one jitted pass, composites
`mask * pred + (1 - mask) * image` and crops back, as LaMa's `bin/predict.py` does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from inpaint_jax import adapters as adapters_lib

PyTree = Any


def ceil_to(x: int, multiple: int) -> int:
  return -(-x // multiple) * multiple


def pad_bottom_right(x: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
  """(H, W, C) -> (shape[0], shape[1], C), padding bottom/right with numpy `mode`."""
  h, w = x.shape[:2]
  if (h, w) == tuple(shape):
    return x
  return np.pad(x, ((0, shape[0] - h), (0, shape[1] - w), (0, 0)), mode=mode)


@functools.lru_cache(maxsize=8)
def _composite_fn(forward: adapters_lib.ForwardFn, g_model: nn.Module):
  """The jitted pass + composite, shared by every Inpainter of the same module (modules are
  frozen dataclasses, so equal configs share compiled programs)."""

  def composite(variables, image, mask):
    pred = forward(g_model, variables, image, mask)
    return mask * pred + (1.0 - mask) * image

  return jax.jit(composite)


@dataclasses.dataclass
class Pending:
  """A dispatched pass: the device result and the size to crop it back to."""

  composite: jax.Array
  size: tuple[int, int]

  def result(self) -> np.ndarray:
    h, w = self.size
    return np.asarray(self.composite)[0, :h, :w]


class Inpainter:
  """Runs a generator on single images in the uniform convention.

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
    self.adapter = adapters_lib.get_adapter(config)
    rule = self.adapter.size_multiple
    if bucket is not None and (bucket <= 0 or bucket % rule):
      raise ValueError(f"--bucket {bucket}: must be a positive multiple of {rule} (this "
                       f"model's size rule)")
    self.multiple = bucket or rule
    self.variables = jax.device_put(variables)
    self._composite = _composite_fn(self.adapter.forward, g_model)

  def padded_shape(self, h: int, w: int) -> tuple[int, int]:
    low = ceil_to(self.adapter.min_size, self.multiple)
    return max(low, ceil_to(h, self.multiple)), max(low, ceil_to(w, self.multiple))

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
