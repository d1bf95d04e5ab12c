"""BatchNorm with PyTorch `nn.BatchNorm2d` semantics.

Differences from `flax.linen.BatchNorm` that matter for matching PyTorch:

* momentum follows PyTorch's convention: new = (1 - momentum) * old +
  momentum * batch, with momentum 0.1 by default;
* train mode normalises with the *biased* batch variance, but the running
  variance is updated with the *unbiased* one (times n / (n - 1), with
  n = N * H * W elements per channel), exactly as PyTorch does.

Variables: params `scale` (C,), `bias` (C,); collection `batch_stats` with
`mean` (C,) and `var` (C,). Running stats are not touched during `init`.

Statistics groups: under `jax.jit` with a batch-sharded global array the
reductions cover the global batch (like SyncBN). Official PyTorch runs used DDP
without SyncBN, so each GPU normalised over its own examples (LaMa: 10 or 15).
`batch_stat_groups(k)` (a context the train step enters while tracing)
reproduces that whatever the device count: a batch of N = G * k examples is
normalised per group of k consecutive examples, so one device and a pod compute
the same numbers. The running statistics move towards the mean over groups of
the per-group mean and unbiased variance. (Under DDP each replica updates its
own copy and DDP broadcasts rank 0's before every forward, so the official
saved statistics follow rank 0's groups only; the group mean is the same in
expectation and does not depend on the device count.)

Frozen BatchNorm (PyTorch `bn.eval()` inside a training model, e.g. RFR-Net's
fine-tuning phase): applying a module in train mode *without* `batch_stats` in
`mutable` makes every BatchNorm use its running statistics and leave them
unchanged, while everything else stays in train mode.

Only under `jax.shard_map` / `pmap` pass `axis_name` to average the
statistics across devices.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

_GROUP_SIZE: contextvars.ContextVar[int] = contextvars.ContextVar("bn_group_size", default=0)


@contextlib.contextmanager
def batch_stat_groups(group_size: int) -> Iterator[None]:
  """Within this context, train-mode BatchNorm normalises per group of `group_size`.

  0 means one group (the whole batch). Enter it around the tracing of a
  jitted function (inside the function body), not around the call.
  """
  if group_size < 0:
    raise ValueError(f"batchnorm.group_size must be >= 0, got {group_size}")
  token = _GROUP_SIZE.set(int(group_size))
  try:
    yield
  finally:
    _GROUP_SIZE.reset(token)


def current_group_size() -> int:
  return _GROUP_SIZE.get()


def _group_sum(a: Array) -> Array:
  """(G, R, L, C) -> (G, C): the sum over R and L.

  The sum over L (a row of the feature map) is a matrix product with a ones vector and
  the R partial sums are then added by a reduction. Why: XLA's CPU reduction of the
  leading axes of a channels-last array (and of its gradient) runs several times slower
  than a product, and BatchNorm's statistics and gradient sums are a large share of a
  train step; a single product over all of R * L would accumulate up to 65k terms in
  sequence and lose float32 precision, the row-then-rows split keeps it.
  """
  ones = jnp.ones(a.shape[:3], a.dtype)
  rows = jax.lax.dot_general(ones, a, (((2,), (2,)), ((0, 1), (0, 1))),
                             precision=jax.lax.Precision.HIGHEST)
  return jnp.sum(rows, axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: Array, scale: Array, bias: Array, epsilon: float
                     ) -> tuple[Array, Array, Array]:
  """Train-mode BatchNorm of groups: x (G, R, L, C) -> (y, mean (G, C), var (G, C)).

  y = (x - mean) / sqrt(var + epsilon) * scale + bias with the biased per-group,
  per-channel mean and variance over R and L (two-pass variance); for images R is
  examples x rows and L the row length. Gradients flow to x,
  scale (C,) and bias (C,) through y only: the returned mean and var are statistics
  for the running averages and must be used under `stop_gradient`.
  """
  return _bn_train_fwd(x, scale, bias, epsilon)[0]


def _bn_train_fwd(x, scale, bias, epsilon):
  n = x.shape[1] * x.shape[2]
  mean = _group_sum(x) / n
  xc = x - mean[:, None, None]
  var = _group_sum(xc * xc) / n
  inv = jax.lax.rsqrt(var + epsilon)
  xhat = xc * inv[:, None, None]
  y = xhat * scale + bias
  return (y, mean, var), (xhat, inv, scale)


def _bn_train_bwd(epsilon, res, cts):
  del epsilon
  xhat, inv, scale = res
  dy = cts[0]
  n = xhat.shape[1] * xhat.shape[2]
  db = _group_sum(dy)
  dg = _group_sum(dy * xhat)
  dx = (scale * inv)[:, None, None] * (dy - (db[:, None, None] + xhat * dg[:, None, None]) / n)
  return dx, jnp.sum(dg, axis=0), jnp.sum(db, axis=0)


batch_norm_train.defvjp(_bn_train_fwd, _bn_train_bwd)


class BatchNorm(nn.Module):
  """PyTorch-style BatchNorm over all axes but the last (channels).

  Attributes:
    momentum: PyTorch momentum (weight of the new batch statistic).
    epsilon: added to the variance.
    use_scale: learn a per-channel scale (PyTorch `affine`).
    use_bias: learn a per-channel bias.
    dtype: output dtype (None: the input dtype). Statistics are computed in float32
      (float64 for float64 inputs, e.g. in float64 reference tests).
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
  def __call__(self, x: Array, *, train: bool, update: Array | bool | None = None,
               update_twice: Array | bool | None = None) -> Array:
    """Normalises x (N, ..., C); returns the same shape.

    Args:
      x: (N, H, W, C) (any rank >= 2; channels last).
      train: True uses batch statistics and updates the running stats (pass
        `mutable=['batch_stats']`; without it the BN is frozen: running
        statistics, no update); False uses the running stats.
      update: optional traced 0-d boolean for train mode: where False the running
        statistics keep their values (the output still uses batch statistics). For
        layers whose result a data-dependent choice may discard under jit (DCF
        computes all its refinement stages and keeps only those the mask asks for),
        so that a discarded call leaves the statistics as PyTorch, which never ran
        it, would. None: always update.
      update_twice: optional traced 0-d boolean for train mode: where True the running
        statistics are updated twice with this call's batch statistics, as PyTorch's
        are when it runs the same layer twice on the same input (DCF skips its second
        fusion pass, identical to the first under exact-arithmetic gates, and this
        stands in for it). Two applications of PyTorch's rule, so
        mean <- (1 - m)((1 - m) mean + m mu) + m mu. `update` False still wins.
    """
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean",
                            lambda: jnp.zeros((c,), self.param_dtype))
    ra_var = self.variable("batch_stats", "var",
                           lambda: jnp.ones((c,), self.param_dtype))
    out_dtype = self.dtype or x.dtype
    stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
    xf = x.astype(stat_dtype)
    # Frozen BN: train mode but statistics not updatable -> running statistics.
    use_batch = train and self.is_mutable_collection("batch_stats")
    scale, bias = self._affine(c, stat_dtype)
    if use_batch:
      n_ex = x.shape[0]
      k = current_group_size()
      if k and n_ex != k and not self.is_initializing():
        if n_ex % k:
          raise ValueError(f"batchnorm.group_size={k} must divide the batch ({n_ex} examples "
                           f"reach {self.name})")
        xg = xf.reshape((n_ex // k, k) + x.shape[1:])
      else:
        xg = xf[None]
      g = xg.shape[0]
      n = xg.size // (g * c)
      if self.axis_name is None:
        row = xg.shape[-2] if xg.ndim > 3 else 1
        y, mean, var = batch_norm_train(xg.reshape(g, n // row, row, c), scale, bias,
                                        self.epsilon)
        y = y.reshape(x.shape)
      else:
        axes = tuple(range(1, xg.ndim - 1))
        per_group = (g,) + (1,) * (xg.ndim - 2) + (c,)  # (G, C) broadcast over xg
        mean = jax.lax.pmean(jnp.mean(xg, axis=axes), self.axis_name)
        # Two-pass variance: better conditioned than E[x^2] - E[x]^2 in float32.
        dev = xg - mean.reshape(per_group)
        var = jax.lax.pmean(jnp.mean(jnp.square(dev), axis=axes), self.axis_name)
        n *= jax.lax.psum(1, self.axis_name)
        y = (dev * jax.lax.rsqrt(var + self.epsilon).reshape(per_group)).reshape(
            x.shape) * scale + bias
      if not self.is_initializing():
        # PyTorch stores the unbiased variance in running_var.
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        batch_mean = jax.lax.stop_gradient(jnp.mean(mean, axis=0)).astype(self.param_dtype)
        batch_var = jax.lax.stop_gradient(jnp.mean(unbiased, axis=0)).astype(self.param_dtype)
        new_mean = (1.0 - m) * ra_mean.value + m * batch_mean
        new_var = (1.0 - m) * ra_var.value + m * batch_var
        if update_twice is not None:
          new_mean = jnp.where(update_twice, (1.0 - m) * new_mean + m * batch_mean, new_mean)
          new_var = jnp.where(update_twice, (1.0 - m) * new_var + m * batch_var, new_var)
        if update is not None:
          new_mean = jnp.where(update, new_mean, ra_mean.value)
          new_var = jnp.where(update, new_var, ra_var.value)
        ra_mean.value, ra_var.value = new_mean, new_var
      return y.astype(out_dtype)
    mean = ra_mean.value.astype(stat_dtype)
    var = ra_var.value.astype(stat_dtype)
    y = (xf - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    return y.astype(out_dtype)

  def _affine(self, c: int, dtype: Any) -> tuple[Array, Array]:
    """The per-channel (scale, bias), ones / zeros where not learned."""
    scale = (self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
             if self.use_scale else jnp.ones((c,), self.param_dtype))
    bias = (self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
            if self.use_bias else jnp.zeros((c,), self.param_dtype))
    return scale.astype(dtype), bias.astype(dtype)


def instance_norm(x: Array, epsilon: float = 1e-5) -> Array:
  """PyTorch `nn.InstanceNorm2d` defaults (no affine, no running stats), NHWC.

  Normalises each example's channels over H and W with the biased variance.
  """
  xf = x.astype(jnp.float32)
  mean = jnp.mean(xf, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(xf - mean), axis=(1, 2), keepdims=True)
  return ((xf - mean) * jax.lax.rsqrt(var + epsilon)).astype(x.dtype)
