"""Spectral normalisation with PyTorch `torch.nn.utils.spectral_norm` semantics.

Usage (inside a compact method):

  y = SpectralNorm(Conv(64, 4, strides=2, padding=1), name="conv0")(x, update_stats=train)

The wrapper takes ownership of the layer it is given, so all of its variables
sit under the wrapper's name:

  params:   {"conv0": {"layer": {"kernel": (kh, kw, in, out), "bias": (out,)}}}
  spectral: {"conv0": {"u": (out,), "v": (in * kh * kw,)}}

PyTorch equivalents (a module wrapped with `spectral_norm`):
`weight_orig` -> params/.../layer/kernel (after the usual OIHW -> HWIO
transpose), `weight_u` -> spectral/.../u, `weight_v` -> spectral/.../v (both
copied as they are; see "Matrix view" below for why no reordering is needed).

Semantics:
* The wrapped layer's `kernel` param is viewed as a matrix W of shape
  (out, rest) (see "Matrix view"). Other params (bias) are left alone.
* `update_stats=True`: `n_steps` power iterations starting from the stored u,
  v = normalize(W^T u), u = normalize(W v) (eps 1e-12), with no gradient
  through u and v; the new u, v are written back, so apply with
  `mutable=['spectral']`. PyTorch does this on every forward in train mode.
* `update_stats=False`: the stored u, v are used as they are (PyTorch eval).
* Either way sigma = u . (W v), with the gradient flowing through W only, and
  the layer runs with kernel W / sigma.
* `init` draws u and v from N(0, 1) with the 'params' rng and normalises them,
  like PyTorch; init never runs the power iteration.

Matrix view: the kernel's last axis is the output axis (flax layout); W is
`moveaxis(kernel, (-1, -2), (0, 1)).reshape(out, -1)`, i.e. for an HWIO conv
kernel the columns are ordered (in, kh, kw), the same as PyTorch's
`weight.reshape(out, -1)` on OIHW. For a Dense kernel (in, out) W is its
transpose. For our `ConvTranspose` kernel (kh, kw, in_t, out_t) this gives
(out_t, in_t * kh * kw), matching PyTorch's `dim=1` choice for ConvTranspose.
So PyTorch's u and v load unchanged in every case.

The `spectral` collection is deliberately separate from `batch_stats`, so that
EMA, checkpoint filtering or cross-device syncing can treat it on its own.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

COLLECTION = "spectral"


def _l2_normalize(x: Array, eps: float) -> Array:
  # torch.nn.functional.normalize: x / max(||x||, eps).
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def kernel_as_matrix(kernel: Array) -> Array:
  """(..., in, out) kernel -> (out, in * prod(...)) matrix, PyTorch order."""
  if kernel.ndim < 2:
    raise ValueError(f"spectral norm needs a kernel with >= 2 dims, got shape {kernel.shape}")
  w = jnp.moveaxis(kernel, (-1, -2), (0, 1))
  return w.reshape(w.shape[0], -1)


def power_iteration(w: Array, u: Array, n_steps: int, eps: float = 1e-12
                    ) -> tuple[Array, Array]:
  """PyTorch's power iteration on W (out, k) from u (out,); returns (u, v)."""
  v = jnp.zeros((w.shape[1],), w.dtype)
  for _ in range(n_steps):
    v = _l2_normalize(w.T @ u, eps)
    u = _l2_normalize(w @ v, eps)
  return u, v


class SpectralNorm(nn.Module):
  """Wraps a layer whose `kernel` param gets divided by its spectral norm.

  Attributes:
    layer: the layer to wrap (e.g. `Conv(...)`, `nn.Dense(...)`); it is
      re-parented under this module as `layer`.
    n_steps: power iterations per call with `update_stats=True` (PyTorch's
      `n_power_iterations`, default 1).
    epsilon: normalisation epsilon (PyTorch default 1e-12).
    param_name: which param of the layer to normalise.
    collection: variable collection holding u and v.
  """

  layer: nn.Module
  n_steps: int = 1
  epsilon: float = 1e-12
  param_name: str = "kernel"
  collection: str = COLLECTION

  @nn.compact
  def __call__(self, *args: Any, update_stats: bool, **kwargs: Any) -> Any:
    """Calls the wrapped layer with its kernel replaced by kernel / sigma.

    Args:
      *args: positional arguments for the wrapped layer.
      update_stats: run the power iteration and store the new u, v (needs
        `mutable=[collection]` outside `init`).
      **kwargs: keyword arguments for the wrapped layer.

    Returns:
      Whatever the wrapped layer returns.
    """
    # A layer built in the caller's compact method belongs to the caller's
    # scope; clone it into ours so its params and our u/v share one name.
    layer = self.layer
    if layer.parent is not self:
      layer = layer.clone(parent=self, name="layer")

    def normalize(variables):
      params = variables.get("params", {})
      if self.param_name not in params:
        if self.is_initializing() and not params:
          # map_variables first sees the empty collection while the layer
          # creates its params; nothing to normalise yet.
          return variables
        raise ValueError(f"SpectralNorm: the wrapped layer has no param {self.param_name!r}; "
                         f"it has {sorted(params)}")
      kernel = params[self.param_name]
      w = kernel_as_matrix(kernel).astype(jnp.float32)
      out_dim, in_dim = w.shape

      def init_vec(n):
        key = self.make_rng("params")
        return _l2_normalize(jax.random.normal(key, (n,), jnp.float32), self.epsilon)

      u_var = self.variable(self.collection, "u", init_vec, out_dim)
      v_var = self.variable(self.collection, "v", init_vec, in_dim)
      u, v = u_var.value, v_var.value
      if update_stats and self.n_steps > 0 and not self.is_initializing():
        w_sg = jax.lax.stop_gradient(w)
        u, v = power_iteration(w_sg, u, self.n_steps, self.epsilon)
        u_var.value, v_var.value = u, v
      u = jax.lax.stop_gradient(u)
      v = jax.lax.stop_gradient(v)
      sigma = jnp.dot(u, w @ v)
      params = dict(params)
      params[self.param_name] = (kernel / sigma.astype(kernel.dtype)).astype(kernel.dtype)
      return {**variables, "params": params}

    def run(mdl, *a, **kw):
      return mdl(*a, **kw)

    return nn.map_variables(
        run, "params", trans_in_fn=normalize, init=self.is_initializing()
    )(layer, *args, **kwargs)
