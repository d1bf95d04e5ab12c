"""SpectralNorm wrapper: PyTorch `spectral_norm` semantics, state in `spectral`."""

from __future__ import annotations

import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from inpaint_jax.models.layers import Conv
from inpaint_jax.models.spectral_norm import SpectralNorm, kernel_as_matrix


class Net(nn.Module):
  """One spectrally normalised conv, as a discriminator would use it."""

  @nn.compact
  def __call__(self, x, *, train: bool):
    return SpectralNorm(Conv(5, 3, strides=2, padding=1), name="sn")(x, update_stats=train)


X = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))


@pytest.fixture(scope="module")
def variables():
  return Net().init(jax.random.key(0), X, train=False)


def conv_ref(x, kernel, bias):
  y = lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + bias


def torch_one_step(w_mat: np.ndarray, u: np.ndarray, eps: float = 1e-12):
  """numpy copy of torch's `_SpectralNorm` train-mode step (1 power iteration)."""
  def normalize(a):
    return a / max(np.linalg.norm(a), eps)
  v = normalize(w_mat.T @ u)
  u = normalize(w_mat @ v)
  return u, v, float(u @ (w_mat @ v))


def test_variables_layout(variables):
  assert set(variables) == {"params", "spectral"}  # u, v are not batch_stats
  assert jax.tree.map(jnp.shape, variables["params"]) == {
      "sn": {"layer": {"kernel": (3, 3, 3, 5), "bias": (5,)}}}
  spec = variables["spectral"]["sn"]
  assert spec["u"].shape == (5,) and spec["v"].shape == (27,)
  np.testing.assert_allclose(np.linalg.norm(spec["u"]), 1.0, rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(spec["v"]), 1.0, rtol=1e-6)


def test_kernel_matrix_is_pytorch_order():
  oihw = np.arange(5 * 3 * 2 * 4, dtype=np.float32).reshape(5, 3, 2, 4)
  hwio = oihw.transpose(2, 3, 1, 0)
  np.testing.assert_array_equal(kernel_as_matrix(jnp.asarray(hwio)), oihw.reshape(5, -1))
  dense = np.arange(12, dtype=np.float32).reshape(3, 4)  # (in, out)
  np.testing.assert_array_equal(kernel_as_matrix(jnp.asarray(dense)), dense.T)


def test_updates_only_with_update_stats(variables):
  net = Net()
  _, same = net.apply(variables, X, train=False, mutable=["spectral"])
  jax.tree.map(np.testing.assert_array_equal, same["spectral"], variables["spectral"])
  _, new = net.apply(variables, X, train=True, mutable=["spectral"])
  assert not np.allclose(new["spectral"]["sn"]["u"], variables["spectral"]["sn"]["u"])
  with pytest.raises(flax.errors.ModifyScopeVariableError):
    net.apply(variables, X, train=True)
  net.apply(variables, X, train=False)  # eval needs no mutable collection


def test_matches_numpy_torch_one_step(variables):
  kernel = np.asarray(variables["params"]["sn"]["layer"]["kernel"], np.float64)
  bias = variables["params"]["sn"]["layer"]["bias"]
  w_mat = kernel.transpose(3, 2, 0, 1).reshape(5, -1)  # torch: OIHW.reshape(out, -1)
  u, v, sigma = torch_one_step(w_mat, np.asarray(variables["spectral"]["sn"]["u"], np.float64))
  y, new = Net().apply(variables, X, train=True, mutable=["spectral"])
  np.testing.assert_allclose(new["spectral"]["sn"]["u"], u, atol=1e-6)
  np.testing.assert_allclose(new["spectral"]["sn"]["v"], v, atol=1e-6)
  np.testing.assert_allclose(y, conv_ref(X, jnp.asarray(kernel / sigma, jnp.float32), bias),
                             atol=1e-5)
  # Eval with the stored vectors: sigma = u . (W v), no iteration.
  y_eval = Net().apply({**variables, "spectral": new["spectral"]}, X, train=False)
  np.testing.assert_allclose(y_eval, y, atol=1e-6)


def test_converges_to_largest_singular_value(variables):
  step = jax.jit(functools.partial(Net().apply, train=True, mutable=["spectral"]))
  vs = variables
  for _ in range(50):
    _, new = step(vs, X)
    vs = {**vs, "spectral": new["spectral"]}
  kernel = vs["params"]["sn"]["layer"]["kernel"]
  w_mat = np.asarray(kernel_as_matrix(kernel))
  spec = vs["spectral"]["sn"]
  sigma = float(np.asarray(spec["u"]) @ (w_mat @ np.asarray(spec["v"])))
  top = float(np.linalg.svd(w_mat, compute_uv=False)[0])
  np.testing.assert_allclose(sigma, top, rtol=1e-4)
  y = Net().apply(vs, X, train=False)
  np.testing.assert_allclose(y, conv_ref(X, kernel / top, vs["params"]["sn"]["layer"]["bias"]),
                             atol=1e-5)


def test_gradients_flow_to_weight_not_to_u_v(variables):
  net = Net()

  def loss(params, spectral):
    return jnp.sum(net.apply({"params": params, "spectral": spectral}, X, train=False) ** 2)

  g_params, g_spec = jax.grad(loss, argnums=(0, 1))(variables["params"], variables["spectral"])
  assert float(jnp.abs(g_params["sn"]["layer"]["kernel"]).max()) > 0
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_spec))

  # The kernel gradient includes the path through sigma(W) = u . (W v).
  u, v = variables["spectral"]["sn"]["u"], variables["spectral"]["sn"]["v"]
  bias = variables["params"]["sn"]["layer"]["bias"]

  def loss_ref(kernel):
    sigma = u @ (kernel_as_matrix(kernel) @ v)
    return jnp.sum(conv_ref(X, kernel / sigma, bias) ** 2)

  np.testing.assert_allclose(g_params["sn"]["layer"]["kernel"],
                             jax.grad(loss_ref)(variables["params"]["sn"]["layer"]["kernel"]),
                             rtol=1e-4, atol=1e-5)

  # Same with update_stats=True: the new u, v are constants for the gradient.
  def loss_train(params, spectral):
    y, _ = net.apply({"params": params, "spectral": spectral}, X, train=True,
                     mutable=["spectral"])
    return jnp.sum(y ** 2)

  _, g_spec = jax.grad(loss_train, argnums=(0, 1))(variables["params"], variables["spectral"])
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_spec))


def test_wraps_dense_and_loads_torch_vectors():
  layer = SpectralNorm(nn.Dense(4))
  x = jnp.ones((2, 6))
  variables = layer.init(jax.random.key(0), x, update_stats=False)
  assert variables["spectral"]["u"].shape == (4,) and variables["spectral"]["v"].shape == (6,)
  # PyTorch weight_orig (out, in), weight_u, weight_v go in unchanged (weight transposed).
  rng = np.random.default_rng(0)
  w = rng.normal(size=(4, 6)).astype(np.float32)
  u = rng.normal(size=4).astype(np.float32)
  v = rng.normal(size=6).astype(np.float32)
  loaded = {"params": {"layer": {"kernel": w.T, "bias": np.zeros(4, np.float32)}},
            "spectral": {"u": u, "v": v}}
  y = layer.apply(loaded, x, update_stats=False)
  np.testing.assert_allclose(y, x @ (w / (u @ w @ v)).T, rtol=1e-5)
