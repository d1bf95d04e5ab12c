"""The system module: frozen backbones as step arguments, EMA, networks by name."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import system as system_lib
from inpaint_jax import train
from inpaint_jax.backbones import frozen as frozen_lib
from inpaint_jax.config_lib import term
from inpaint_jax.registry import BACKBONES, LOSSES
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

# A distinctive value, so that a copy of the weights inside the program would show.
_PROBE_KERNEL = (0.123456789 + np.arange(6, dtype=np.float32).reshape(1, 1, 3, 2))


class _Probe(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Conv(2, (1, 1), use_bias=False)(x)


@BACKBONES.register("test_probe")
def _probe_backbone(cfg):
  del cfg
  return frozen_lib.Backbone(_Probe(), lambda: {"params": {"Conv_0": {"kernel": _PROBE_KERNEL}}})


@LOSSES.register("test_probe_l2")
def _probe_l2(inputs):
  net = inputs.frozen["probe"]
  return jnp.mean(jnp.square(net(inputs.pred) - net(inputs.image)))


def _probe_config(**overrides):
  config = helpers.tiny_config(**overrides)
  config.frozen.probe = {"kind": "test_probe"}
  config.losses.generator.probe = term("test_probe_l2", 1.0)
  return config


def _plan(system, config):
  return train.Schedule(config, system).plan(0)


def test_frozen_weights_are_arguments_of_the_compiled_step_not_constants():
  config = _probe_config()
  system = system_lib.build(config)
  state = system_lib.init_state(system, jax.random.PRNGKey(0))
  frozen_vars = system.load_frozen()
  s = config.data.image_size
  batches = {"image": jnp.zeros((1, 4, s, s, 3)), "mask": jnp.zeros((1, 4, s, s, 1))}
  lowered = jax.jit(functools.partial(train.train_step, system=system,
                                      plan=_plan(system, config))).lower(
                                          state, batches, frozen_vars)
  n_args = len(jax.tree.leaves((state, batches, frozen_vars)))
  assert len(jax.tree.leaves(lowered.args_info)) == n_args
  text = lowered.as_text()
  signature = text[text.index("func.func public @main("):].split("{", 1)[0]
  assert signature.count("%arg") == n_args
  assert "tensor<1x1x3x2xf32>" in signature  # the probe kernel is an input ...
  constants = [line for line in text.splitlines() if "stablehlo.constant" in line]
  assert not any("1x1x3x2" in line for line in constants)  # ... and not a constant


def test_frozen_weights_are_used_logged_and_not_checkpointed(tmp_path):
  config = _probe_config(total_steps=2, checkpoint_every_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  rows = helpers.read_metrics(str(tmp_path))
  assert all(np.isfinite(r["g/probe"]) and r["g/probe"] > 0 for r in rows)
  saved = helpers.load_state(str(tmp_path), 2)
  assert saved and not any("probe" in k or "frozen" in k for k in saved)
  for k, v in saved.items():  # no copy of the probe's weights either
    assert not (v.dtype.kind == "f" and np.isin(_PROBE_KERNEL, v).any()), k


def test_generator_ema_follows_the_update_rule_and_is_used_for_prediction():
  config = helpers.tiny_config(**{"train.ema_decay": 0.9})
  system = system_lib.build(config)
  state = system_lib.init_state(system, jax.random.PRNGKey(0))
  s = config.data.image_size
  rng = np.random.default_rng(0)
  batches = {"image": jnp.asarray(rng.uniform(size=(1, 4, s, s, 3)), jnp.float32),
             "mask": jnp.asarray(rng.uniform(size=(1, 4, s, s, 1)) > 0.5, jnp.float32)}
  step = jax.jit(functools.partial(train.train_step, system=system,
                                   plan=_plan(system, config)))
  p0 = state.nets["g"].params
  state1, _ = step(state, batches, {})
  state2, _ = step(state1, batches, {})
  p1, p2 = state1.nets["g"].params, state2.nets["g"].params
  want = jax.tree.map(lambda a, b, c: 0.9 * (0.9 * a + 0.1 * b) + 0.1 * c, p0, p1, p2)
  for got, w in zip(jax.tree.leaves(state2.ema_params), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-7)
  variables = system_lib.generator_variables(state2)
  assert variables["params"] is state2.ema_params
  live = system_lib.generator_variables(state2, use_ema=False)
  assert live["params"] is state2.nets["g"].params


def test_no_discriminator_builds_one_network():
  config = helpers.tiny_config(**{"discriminator.name": "none"})
  config.losses.generator = {"l1": term("masked_l1", 1.0)}
  config.losses.discriminator = {}
  system = system_lib.build(config)
  assert list(system.nets) == ["g"]
  state = jax.eval_shape(functools.partial(system_lib.init_state, system),
                         jax.random.PRNGKey(0))
  assert system_lib.param_counts(state)["discriminator_params"] == 0
