"""Grey-scale morphology and small fixed filters on masks and images, shared by models and losses.

Dilation and erosion follow PyTorch `F.max_pool2d(mask, k, stride=1, padding=k // 2)`: the
window ignores pixels outside the image. DCF's network (its blend map) and DCF's boundary
losses both read them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dilate(mask: jax.Array, k: int) -> jax.Array:
  """(N, H, W, 1) -> the same: max over each k x k window (the border is not a value).

  A separable max of shifted slices of the input padded with -inf (exactly the values of
  `reduce_window` with padding k // 2), so that no pooling with explicit pads is left in
  the graph for converters (ONNX) that drop them.
  """
  p = k // 2
  for axis in (1, 2):
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (p, p)
    padded = jnp.pad(mask, pad, constant_values=-jnp.inf)
    size = padded.shape[axis] - k + 1
    out = jax.lax.slice_in_dim(padded, 0, size, axis=axis)
    for i in range(1, k):
      out = jnp.maximum(out, jax.lax.slice_in_dim(padded, i, i + size, axis=axis))
    mask = out
  return mask


def erode(mask: jax.Array, k: int) -> jax.Array:
  """Min over each k x k window, as -max_pool(-mask)."""
  return -dilate(-mask, k)


def depthwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Zero-padded 'same' cross-correlation of every channel of x (N, H, W, C) with kernel."""
  c = x.shape[-1]
  kh, kw = kernel.shape
  k = jnp.tile(kernel.astype(x.dtype)[:, :, None, None], (1, 1, 1, c))
  return jax.lax.conv_general_dilated(x, k, (1, 1), ((kh // 2, kh // 2), (kw // 2, kw // 2)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=c)


def gaussian_kernel(size: int, sigma: float) -> jax.Array:
  """(size, size), normalised to sum 1."""
  ax = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  g = jnp.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2.0 * sigma * sigma))
  return g / jnp.sum(g)
