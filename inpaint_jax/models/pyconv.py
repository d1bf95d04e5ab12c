"""Pyramidal convolution (PyConv, Duta et al. 2020), NHWC.

A PyConv layer runs several grouped convolutions with different kernel sizes on the same
input, in parallel, and concatenates their outputs along the channels. The pyramids of the
reference PyConvResNet, by number of levels:

  levels  kernels     groups       output split of `features`
  4       3, 5, 7, 9  1, 4, 8, 16  1/4, 1/4, 1/4, 1/4
  3       3, 5, 7     1, 4, 8      1/4, 1/4, 1/2
  2       3, 5        1, 4         1/2, 1/2
  1       3           1            1

Each branch is a k x k convolution with zero padding k // 2, the layer's stride and no
bias (the reference follows every PyConv with a norm). Branch i has
k_i^2 * (C_in / g_i) * C_i weights, so a layer has sum_i k_i^2 C_in C_i / g_i parameters
(`param_count`). Groups must divide both C_in and the branch's output channels.

Params: `branch_{i}/kernel` (k_i, k_i, C_in / g_i, C_i) (and `bias` (C_i,) with
`use_bias`), the layout of a PyTorch grouped `Conv2d` weight (C_i, C_in / g_i, k, k)
transposed by (2, 3, 1, 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from inpaint_jax.models.layers import torch_bias_init, torch_kernel_init

Array = jax.Array

# levels -> (kernels, groups, output fractions as (numerator, denominator)).
PYRAMIDS = {
    4: ((3, 5, 7, 9), (1, 4, 8, 16), ((1, 4), (1, 4), (1, 4), (1, 4))),
    3: ((3, 5, 7), (1, 4, 8), ((1, 4), (1, 4), (1, 2))),
    2: ((3, 5), (1, 4), ((1, 2), (1, 2))),
    1: ((3,), (1,), ((1, 1),)),
}


def pyramid(levels: int, features: int) -> tuple[tuple[int, ...], tuple[int, ...],
                                                  tuple[int, ...]]:
  """(kernels, groups, output channels per branch) of the reference `levels`-pyramid."""
  if levels not in PYRAMIDS:
    raise ValueError(f"PyConv: levels must be one of {sorted(PYRAMIDS)}, got {levels}")
  kernels, groups, fractions = PYRAMIDS[levels]
  splits = tuple(features * a // b for a, b in fractions)
  if sum(splits) != features:
    raise ValueError(f"PyConv: {features} output channels do not split into the "
                     f"{levels}-level pyramid's fractions {fractions}")
  return kernels, groups, splits


def param_count(c_in: int, kernels: Sequence[int], groups: Sequence[int],
                splits: Sequence[int], use_bias: bool = False) -> int:
  """sum_i k_i^2 * C_in / g_i * C_i (+ C_i with bias): the formula, for tests and docs."""
  return sum(k * k * (c_in // g) * c + (c if use_bias else 0)
             for k, g, c in zip(kernels, groups, splits, strict=True))


IMPLS = ("auto", "grouped", "dense")


def block_diagonal(kernel: Array, groups: int) -> Array:
  """(k, k, C_in / g, C_out) grouped kernel -> the equivalent dense (k, k, C_in, C_out).

  Output channels [j C_out / g, (j + 1) C_out / g) read input channels
  [j C_in / g, (j + 1) C_in / g) only, as in a grouped convolution; the rest is zero.
  """
  k1, k2, cg, c_out = kernel.shape
  og = c_out // groups
  blocks = kernel.reshape(k1, k2, cg, groups, og)
  eye = jnp.eye(groups, dtype=kernel.dtype)
  # dense[.., j * cg + i, j2 * og + o] = blocks[.., i, j2, o] * [j == j2]
  dense = jnp.einsum("abigo,jg->abjigo", blocks, eye)
  return dense.reshape(k1, k2, groups * cg, c_out)


class GroupedConv(nn.Module):
  """PyTorch `Conv2d(k, stride, padding=k // 2, groups=g)`, zero padding, NHWC.

  `impl`: "grouped" runs XLA's grouped convolution; "dense" runs one dense convolution with
  the block-diagonal kernel (`block_diagonal`; g times the multiplications, but XLA's CPU
  backend runs grouped convolutions and their gradients an order of magnitude slower than
  dense ones at our sizes); "auto" picks dense on CPU and grouped elsewhere. The parameters
  and results are the same.
  """

  features: int
  kernel_size: int
  groups: int = 1
  strides: int = 1
  use_bias: bool = False
  dtype: Any = None
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """(N, H, W, C_in) -> (N, ceil(H / stride), ceil(W / stride), features) for odd k."""
    c_in, k, g = x.shape[-1], self.kernel_size, self.groups
    if c_in % g or self.features % g:
      raise ValueError(f"PyConv: groups={g} must divide the input channels ({c_in}) and the "
                       f"branch's output channels ({self.features})")
    kernel = self.param("kernel", torch_kernel_init(), (k, k, c_in // g, self.features),
                        jnp.float32)
    bias = (self.param("bias", torch_bias_init(c_in // g * k * k), (self.features,),
                       jnp.float32) if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if self.impl not in IMPLS:
      raise ValueError(f"PyConv: impl must be one of {', '.join(IMPLS)}, got {self.impl!r}")
    dense = self.impl == "dense" or (self.impl == "auto" and jax.default_backend() == "cpu")
    if dense and g > 1:
      kernel, g = block_diagonal(kernel, g), 1
    p = k // 2
    y = lax.conv_general_dilated(x, kernel, (self.strides, self.strides), ((p, p), (p, p)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                 feature_group_count=g)
    return y if bias is None else y + bias


class PyConv(nn.Module):
  """A pyramidal convolution layer (see the module docstring).

  Attributes:
    features: output channels (the sum of `splits`).
    kernels: kernel size per branch (odd).
    groups: group count per branch.
    splits: output channels per branch; None: the reference split for len(kernels) levels.
    strides: stride of every branch.
    use_bias: bias on every branch (the reference: none).
    dtype: computation dtype (None: promote input and params).
    impl: how grouped branches run: auto | grouped | dense (see `GroupedConv`).
  """

  features: int
  kernels: Sequence[int] = (3, 5, 7, 9)
  groups: Sequence[int] = (1, 4, 8, 16)
  splits: Sequence[int] | None = None
  strides: int = 1
  use_bias: bool = False
  dtype: Any = None
  impl: str = "auto"

  def branch_splits(self) -> tuple[int, ...]:
    if self.splits is not None:
      splits = tuple(int(s) for s in self.splits)
    else:
      splits = pyramid(len(self.kernels), self.features)[2]
    if not len(splits) == len(self.kernels) == len(self.groups):
      raise ValueError(f"PyConv: kernels {list(self.kernels)}, groups {list(self.groups)} and "
                       f"splits {list(splits)} need one entry per branch")
    if sum(splits) != self.features:
      raise ValueError(f"PyConv: splits {list(splits)} must sum to features={self.features}")
    if any(k % 2 == 0 for k in self.kernels):
      raise ValueError(f"PyConv: kernels must be odd, got {list(self.kernels)}")
    return splits

  @property
  def max_kernel(self) -> int:
    return max(self.kernels)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """(N, H, W, C_in) -> (N, ceil(H / strides), ceil(W / strides), features)."""
    splits = self.branch_splits()
    outs = [GroupedConv(c, k, g, self.strides, self.use_bias, self.dtype, self.impl,
                        name=f"branch_{i}")(x)
            for i, (k, g, c) in enumerate(zip(self.kernels, self.groups, splits, strict=True))]
    return jnp.concatenate(outs, axis=-1)
