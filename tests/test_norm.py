"""BatchNorm statistics groups and frozen BatchNorm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models.norm import BatchNorm, batch_stat_groups


def _setup(seed=0, n=8, c=5):
  x = jax.random.normal(jax.random.PRNGKey(seed), (n, 4, 3, c)) * 2.0 + 0.5
  bn = BatchNorm()
  variables = bn.init(jax.random.PRNGKey(1), x, train=False)
  variables = {"params": {"scale": jnp.linspace(0.5, 1.5, c), "bias": jnp.linspace(-1, 1, c)},
               "batch_stats": {"mean": jnp.full((c,), 0.1), "var": jnp.full((c,), 1.2)}}
  return bn, variables, x


def _train(bn, variables, x, k):
  with batch_stat_groups(k):
    return bn.apply(variables, x, train=True, mutable=["batch_stats"])


def test_group_k_on_a_batch_of_2k_equals_two_batches_of_k():
  bn, variables, x = _setup(n=8)
  y, stats = _train(bn, variables, x, 4)
  y_a, stats_a = _train(bn, variables, x[:4], 0)
  y_b, stats_b = _train(bn, variables, x[4:], 0)
  np.testing.assert_allclose(y, jnp.concatenate([y_a, y_b]), atol=1e-6)
  # Running statistics move towards the mean of the groups' statistics.
  for name in ("mean", "var"):
    want = (stats_a["batch_stats"][name] + stats_b["batch_stats"][name]) / 2
    np.testing.assert_allclose(stats["batch_stats"][name], want, atol=1e-6)
  # And differ from whole-batch statistics.
  y_all, _ = _train(bn, variables, x, 0)
  assert float(jnp.max(jnp.abs(y_all - y))) > 1e-3


def test_groups_under_jit_on_a_sharded_batch_match_one_device():
  bn, variables, x = _setup(n=8)
  want, _ = _train(bn, variables, x, 2)
  devices = jax.devices()
  mesh = jax.make_mesh((len(devices),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  xs = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
  got, _ = jax.jit(lambda v, a: _train(bn, v, a, 2))(variables, xs)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_group_size_must_divide_the_batch():
  bn, variables, x = _setup(n=6)
  with pytest.raises(ValueError, match="group_size=4 must divide the batch"):
    _train(bn, variables, x, 4)


def test_frozen_batchnorm_uses_running_statistics_in_train_mode():
  bn, variables, x = _setup()
  frozen = bn.apply(variables, x, train=True)  # batch_stats not mutable: frozen
  eval_out = bn.apply(variables, x, train=False)
  np.testing.assert_array_equal(frozen, eval_out)
  live, _ = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  assert float(jnp.max(jnp.abs(live - frozen))) > 1e-3


def test_axis_name_statistics_equal_those_of_the_whole_batch():
  """With `axis_name`, statistics are averaged over the mapped axis (here a vmap)."""
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 4, 5, 6)), jnp.float32)
  whole = x.reshape(6, 4, 5, 6)
  bn = BatchNorm()
  variables = bn.init(jax.random.key(0), whole, train=False)
  want, want_stats = bn.apply(variables, whole, train=True, mutable=["batch_stats"])
  mapped = BatchNorm(axis_name="devices")
  got, got_stats = jax.vmap(
      lambda a: mapped.apply(variables, a, train=True, mutable=["batch_stats"]),
      axis_name="devices")(x)
  np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-5)
  for key in ("mean", "var"):
    np.testing.assert_allclose(got_stats["batch_stats"][key][0], want_stats["batch_stats"][key],
                               atol=1e-6)
