"""BatchNorm with PyTorch `nn.BatchNorm2d` semantics.

Differences from `flax.linen.BatchNorm` that matter for matching PyTorch:

* momentum follows PyTorch's convention: new = (1 - momentum) * old +
  momentum * batch, with momentum 0.1 by default;
* train mode normalises with the *biased* batch variance, but the running
  variance is updated with the *unbiased* one (times n / (n - 1), with
  n = N * H * W elements per channel), exactly as PyTorch does.

Variables: params `scale` (C,), `bias` (C,); collection `batch_stats` with
`mean` (C,) and `var` (C,). Running stats are not touched during `init`.

Data parallelism: under `jax.jit` with a batch-sharded global array the
reductions are global already (no `axis_name`). Only under `jax.shard_map` /
`pmap` pass `axis_name` to average the statistics across devices.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class BatchNorm(nn.Module):
  """PyTorch-style BatchNorm over all axes but the last (channels).

  Attributes:
    momentum: PyTorch momentum (weight of the new batch statistic).
    epsilon: added to the variance.
    use_scale: learn a per-channel scale (PyTorch `affine`).
    use_bias: learn a per-channel bias.
    dtype: output dtype (None: the input dtype). Statistics are always float32.
    param_dtype: dtype of params and running stats.
    axis_name: only for use inside `shard_map`/`pmap`: the mapped axis to
      average batch statistics over.
  """

  momentum: float = 0.1
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """Normalises x (N, ..., C); returns the same shape.

    Args:
      x: (N, H, W, C) (any rank >= 2; channels last).
      train: True uses batch statistics and updates the running stats (pass
        `mutable=['batch_stats']`); False uses the running stats.
    """
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean",
                            lambda: jnp.zeros((c,), self.param_dtype))
    ra_var = self.variable("batch_stats", "var",
                           lambda: jnp.ones((c,), self.param_dtype))
    out_dtype = self.dtype or x.dtype
    xf = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - 1))
    if train:
      mean = jnp.mean(xf, axis=axes)
      if self.axis_name is not None:
        mean = jax.lax.pmean(mean, self.axis_name)
      # Two-pass variance: better conditioned than E[x^2] - E[x]^2 in float32.
      var = jnp.mean(jnp.square(xf - mean), axis=axes)
      n = 1
      for a in axes:
        n *= x.shape[a]
      if self.axis_name is not None:
        var = jax.lax.pmean(var, self.axis_name)
        n *= jax.lax.psum(1, self.axis_name)
      if not self.is_initializing():
        # PyTorch stores the unbiased variance in running_var.
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        ra_mean.value = ((1.0 - m) * ra_mean.value
                         + m * jax.lax.stop_gradient(mean).astype(self.param_dtype))
        ra_var.value = ((1.0 - m) * ra_var.value
                        + m * jax.lax.stop_gradient(unbiased).astype(self.param_dtype))
    else:
      mean = ra_mean.value.astype(jnp.float32)
      var = ra_var.value.astype(jnp.float32)
    y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon)
    if self.use_scale:
      y = y * self.param("scale", nn.initializers.ones, (c,), self.param_dtype).astype(jnp.float32)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (c,), self.param_dtype).astype(jnp.float32)
    return y.astype(out_dtype)
