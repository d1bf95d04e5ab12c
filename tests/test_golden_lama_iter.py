"""One official LaMa training iteration, reproduced by `train.train_step`.

`tests/data/lama_iter_small.npz` holds one iteration of the official
Lightning loop (G step, per-optimiser gradient clipping, a fresh generator
forward, D step with R1) on a small FFC generator (ngf 5, 2 blocks) and a
PatchGAN (ndf 8, 3 layers), run from the same start with LaMa's Adam
optimisers and with plain SGD at lr 1 (so that the weights after SGD are the
start minus the clipped gradients). Tolerances: PyTorch float32 against
float64 on the same iteration, per group; see the README's "Faithfulness"
table. Run with `pytest -s` to see the measured errors.
"""

from __future__ import annotations

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import system as system_lib
from inpaint_jax import train
from inpaint_jax.models.lama import torch_keys as convert
from inpaint_jax.optim import optim_group
from inpaint_jax.state import NetState, TrainState
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

GOLDEN = pathlib.Path(__file__).parent / "data" / "lama_iter_small.npz"
ADAM = {"g": optim_group(name="adam", lr=1e-3, grad_clip_norm=1.0),
        "d": optim_group(name="adam", lr=1e-4, grad_clip_norm=1.0)}
SGD = {"g": optim_group(name="sgd", lr=1.0, grad_clip_norm=1.0),
       "d": optim_group(name="sgd", lr=1.0, grad_clip_norm=1.0)}


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(GOLDEN))


def _group(data, prefix):
  return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}


def _config(optim):
  config = helpers.tiny_config()
  config.data.image_size = 64
  config.generator.ngf = 5
  config.generator.n_blocks = 2
  config.discriminator.ndf = 8
  config.discriminator.n_layers = 3
  config.optim.g = optim["g"]
  config.optim.d = optim["d"]
  return config


def _nhwc(a):
  return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def _run(golden, optim, *, do_d=True, fresh_fake_for_d=True):
  """One train_step from the stored start; returns (metrics, torch-keyed G, D after)."""
  system = system_lib.build(_config(optim))
  g_vars = convert.generator_variables_from_torch(_group(golden, ""), n_downsampling=3)
  d_vars = convert.discriminator_variables_from_torch(
      {k: v for k, v in golden.items() if k.startswith("discriminator.")})
  nets = {}
  for name, variables in (("g", g_vars), ("d", d_vars)):
    params, cols = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    nets[name] = NetState(params, cols, system.optimizers[name].init(params))
  state = TrainState(step=jnp.zeros((), jnp.int32), nets=nets, ema_params={},
                     rng=jax.random.PRNGKey(0))
  batches = {"image": _nhwc(golden["io/image"])[None], "mask": _nhwc(golden["io/mask"])[None]}
  plan = train.StepPlan(do_d=do_d, n_critic=1, critic_batches="fresh",
                        fresh_fake_for_d=fresh_fake_for_d, phase=train.Phase("main", 0),
                        ema_decay=0.0, bn_group_size=0)
  new, metrics = jax.jit(functools.partial(train.train_step, system=system, plan=plan))(
      state, batches, {})
  new = jax.device_get(new)
  g = convert.generator_variables_to_torch(new.nets["g"].variables)
  d = convert.discriminator_variables_to_torch(new.nets["d"].variables)
  return jax.device_get(metrics), g, d


def _report(name, err, tol):
  print(f"\n[golden iter] {name}: max err {err:.3g} (bound {tol:g})")
  assert err <= tol, (name, err, tol)


def _max_abs(got, want, keys):
  return max(float(np.max(np.abs(np.asarray(got[k]) - want[k]))) for k in keys)


def _is_stat(k):
  return k.endswith(("running_mean", "running_var"))


@pytest.fixture(scope="module")
def sgd_run(golden):
  return _run(golden, SGD)


def test_generator_step_losses_and_gradient_norm(golden, sgd_run):
  metrics, _, _ = sgd_run
  for ours, theirs in (("g/l1", "l1"), ("g/adv", "adv"), ("g/fm", "fm"), ("g/total", "total")):
    want = float(golden[f"g_step/loss/{theirs}"])
    _report(f"G loss {theirs} (rel)", abs(float(metrics[ours]) - want) / abs(want), 1e-5)
  want = float(golden["g_step/grad_norm"])
  _report("G grad norm (rel)", abs(float(metrics["g/grad_norm"]) - want) / want, 3e-5)


def test_generator_clipped_gradients_and_sgd_update(golden, sgd_run):
  _, g, _ = sgd_run
  init = _group(golden, "generator.")
  grads = _group(golden, "g_step/grad/generator.")
  assert len(grads) == 85
  err = max(float(np.max(np.abs((init[k] - g[k]) - grads[k]))) for k in grads)
  _report("G clipped gradients = init - SGD(lr 1) params", err, 1e-5)
  want = _group(golden, "sgd/generator.")
  params = [k for k in want if not _is_stat(k) and "num_batches" not in k]
  stats = [k for k in want if _is_stat(k)]
  _report("G params after the SGD iteration", _max_abs(g, want, params), 1e-5)
  _report("G BN statistics after both forwards (SGD)", _max_abs(g, want, stats), 5e-5)


def test_discriminator_step_losses_gradients_and_statistics(golden, sgd_run):
  metrics, _, d = sgd_run
  loss = _group(golden, "sgd/d_step/loss/")
  checks = (("d/adv", float(loss["adv_real"] + loss["adv_fake"])),
            ("d/total", float(loss["total"])))
  for ours, want in checks:
    _report(f"D loss {ours} (rel)", abs(float(metrics[ours]) - want) / abs(want), 1e-5)
  r1_raw = float(metrics["d/r1"]) / 0.001
  _report("D R1 raw (rel)", abs(r1_raw - float(loss["r1_raw"])) / float(loss["r1_raw"]), 1e-5)
  want = float(golden["sgd/d_step/grad_norm"])
  _report("D grad norm (rel)", abs(float(metrics["d/grad_norm"]) - want) / want, 1e-5)
  ref = _group(golden, "sgd/discriminator.")
  params = [k for k in ref if not _is_stat(k) and "num_batches" not in k]
  _report("D params after the SGD iteration", _max_abs(d, ref, params), 1e-4)
  # D's state advances in the G step too (D(img), D(pred)), as in PyTorch.
  stats = [k for k in ref if _is_stat(k)]
  assert len(stats) == 6
  _report("D BN statistics after 4 forwards (official)", _max_abs(d, ref, stats), 1e-6)


def _assert_adam_rule(name, got, want, grads, lr):
  """|got - want| <= 0.01 lr where |clipped grad| > 1e-5, <= 2 lr + 1e-6 everywhere.

  Adam's first step is about -lr * sign(g): where g is at float-noise level
  its sign, and so the step, is arbitrary in both implementations.
  """
  worst_clear = worst_all = 0.0
  for k, g in grads.items():
    delta = np.abs(np.asarray(got[k]) - want[k])
    worst_all = max(worst_all, float(np.max(delta)))
    clear = np.abs(g) > 1e-5
    if clear.any():
      worst_clear = max(worst_clear, float(np.max(delta[clear])))
  _report(f"{name} Adam params, |g| > 1e-5 elements (in units of lr)", worst_clear / lr, 0.01)
  _report(f"{name} Adam params, all elements (in units of lr)", worst_all / lr, 2 + 1e-6 / lr)


def test_adam_iteration(golden):
  metrics, g, d = _run(golden, ADAM)
  want_g, want_d = _group(golden, "adam/generator."), _group(golden, "adam/discriminator.")
  g_grads = _group(golden, "g_step/grad/generator.")
  d_grads = _group(golden, "adam/d_step/grad/discriminator.")
  _assert_adam_rule("G", g, want_g, g_grads, 1e-3)
  _assert_adam_rule("D", d, want_d, d_grads, 1e-4)
  noisy = [k for k in want_g if _is_stat(k) and k.split(".")[1] in ("9", "12", "15")
           and k.endswith("running_mean")]
  quiet = [k for k in want_g if _is_stat(k) and k not in noisy]
  assert len(noisy) == 3
  _report("G BN statistics (Adam), ConvT-bias-fed means", _max_abs(g, want_g, noisy), 5e-4)
  _report("G BN statistics (Adam), elsewhere", _max_abs(g, want_g, quiet), 1e-5)
  _report("D BN statistics (Adam)", _max_abs(d, want_d, [k for k in want_d if _is_stat(k)]),
          1e-6)
  loss = _group(golden, "adam/d_step/loss/")
  want = float(loss["adv_real"] + loss["adv_fake"])
  _report("D loss d/adv, Adam run (rel)", abs(float(metrics["d/adv"]) - want) / want, 1e-5)
  want = float(golden["adam/d_step/grad_norm"])
  _report("D grad norm, Adam run (rel)", abs(float(metrics["d/grad_norm"]) - want) / want, 1e-5)


def test_discriminator_gradients_after_an_adam_generator_step(golden):
  # Adam for G (as the official run), SGD lr 1 for D: D's update is its clipped gradient.
  _, _, d = _run(golden, {"g": ADAM["g"], "d": SGD["d"]})
  init = _group(golden, "discriminator.")
  grads = _group(golden, "adam/d_step/grad/discriminator.")
  assert len(grads) == 16
  err = max(float(np.max(np.abs((init[k] - d[k]) - grads[k]))) for k in grads)
  _report("D clipped gradients after the Adam G step", err, 1e-4)


def test_generator_step_statistics_and_discriminator_logits(golden):
  # G step only, no fresh forward: G's BN statistics after one forward, D's
  # after D(img) and D(pred).
  _, g, d = _run(golden, SGD, do_d=False, fresh_fake_for_d=False)
  want_g = _group(golden, "g_step/bn/generator.")
  want_d = _group(golden, "g_step/bn/discriminator.")
  _report("G BN statistics after the G-step forward",
          _max_abs(g, want_g, [k for k in want_g if _is_stat(k)]), 1e-6)
  _report("D BN statistics after the G step",
          _max_abs(d, want_d, [k for k in want_d if _is_stat(k)]), 1e-6)

  system = system_lib.build(_config(SGD))
  g_vars = convert.generator_variables_from_torch(_group(golden, ""), n_downsampling=3)
  d_vars = convert.discriminator_variables_from_torch(
      {k: v for k, v in golden.items() if k.startswith("discriminator.")})
  image, mask = _nhwc(golden["io/image"]), _nhwc(golden["io/mask"])
  out, _ = train.apply_net(system.nets["g"], g_vars, image, mask, train=True)
  (real, _), cols = train.apply_net(system.nets["d"], d_vars, image, train=True)
  (fake, _), _ = train.apply_net(system.nets["d"], {**d_vars, **cols}, out["pred"], train=True)
  for name, got in (("d_real_logits", real), ("d_fake_logits", fake)):
    want = np.transpose(golden[f"g_step/{name}"], (0, 2, 3, 1))
    _report(f"G-step {name}", float(np.max(np.abs(np.asarray(got) - want))), 2e-5)


def test_golden_file_describes_this_setup(golden):
  meta = json.loads(str(golden["meta_json"]))
  assert meta["generator_param_count"] == 53953
  assert meta["discriminator_param_count"] == 44761
  counts = system_lib.param_counts(jax.eval_shape(
      functools.partial(system_lib.init_state, system_lib.build(_config(SGD))),
      jax.random.PRNGKey(0)))
  assert counts == {"generator_params": 53953, "discriminator_params": 44761}
