"""End-to-end training: artefacts, exact resume, devices, processes, signals."""

import glob
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from inpaint_jax import train
from tests import helpers

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_compile")]


def _flat(state) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def _crash_then_resume(config_fn, workdir, monkeypatch, at=3):
  """Runs with a crash after step `at`, then resumes; returns the final flat state."""
  monkeypatch.setenv(train.FAULT_ENV, f"raise@{at}")
  with pytest.raises(train.InjectedFault):
    train.train_and_evaluate(config_fn(), workdir)
  monkeypatch.delenv(train.FAULT_ENV)
  return _flat(train.train_and_evaluate(config_fn(), workdir))


def _assert_equal_states(got, want):
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """A 4-step run; its workdir and final state are shared by several tests."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  state = train.train_and_evaluate(helpers.tiny_config(), workdir)
  return workdir, _flat(state)


def test_run_writes_checkpoints_tensorboard_metrics_and_samples(uninterrupted):
  workdir, state = uninterrupted
  assert helpers.checkpoint_steps(workdir) == [2, 4]
  assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  assert len(glob.glob(os.path.join(workdir, "samples", "samples_*.png"))) == 2
  rows = helpers.read_metrics(workdir)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for key in ("g/l1", "g/adv", "g/fm", "g/total", "d/adv", "d/r1", "d/total",
              "g/grad_norm", "g/lr", "d/lr", "steps_per_sec"):
    assert all(np.isfinite(r[key]) for r in rows), key
  # The recipe weights are applied: g/total is the sum of its terms.
  for r in rows:
    np.testing.assert_allclose(r["g/total"], r["g/l1"] + r["g/adv"] + r["g/fm"], rtol=1e-5)
    np.testing.assert_allclose([r["g/lr"], r["d/lr"]], [1e-3, 1e-4], rtol=1e-6)
  assert int(state[".step"]) == 4


def test_crash_then_resume_equals_uninterrupted(uninterrupted, tmp_path, monkeypatch):
  _, want = uninterrupted
  workdir = str(tmp_path)
  got = _crash_then_resume(helpers.tiny_config, workdir, monkeypatch)
  _assert_equal_states(got, want)


def _no_d_config():
  config = helpers.tiny_config()
  config.discriminator.name = "none"
  config.losses.generator = {"l1": {"fn": "masked_l1", "weight": 1.0}}
  config.losses.discriminator = {}
  return config


def test_no_discriminator_trains_and_resumes_bit_exactly(tmp_path, monkeypatch):
  want = _flat(train.train_and_evaluate(_no_d_config(), str(tmp_path / "a")))
  assert not any(".nets['d']" in k for k in want)
  rows = helpers.read_metrics(str(tmp_path / "a"))
  assert all(not k.startswith("d/") for r in rows for k in r)
  assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(np.isfinite(r["g/l1"]) for r in rows)
  got = _crash_then_resume(_no_d_config, str(tmp_path / "b"), monkeypatch)
  _assert_equal_states(got, want)


def _update_count(flat, net):
  counts = [v for k, v in flat.items() if k.startswith(f".nets['{net}'].opt_state")
            and k.endswith(".count")]
  assert counts, f"no optimiser count for {net}"
  return int(counts[0])


@pytest.mark.parametrize("critic_batches", ["fresh", "same"])
def test_n_critic_makes_n_critic_updates_per_generator_update(tmp_path, critic_batches):
  config = helpers.tiny_config(**{"total_steps": 2, "checkpoint_every_steps": 2,
                                  "train.n_critic": 5, "train.critic_batches": critic_batches})
  config.losses.generator = {"adv": {"fn": "wgan_g", "weight": 1.0}}
  config.losses.discriminator = {"adv": {"fn": "wgan_d", "weight": 1.0},
                                 "gp": {"fn": "gradient_penalty", "weight": 10.0}}
  state = _flat(train.train_and_evaluate(config, str(tmp_path)))
  assert _update_count(state, "g") == 2
  assert _update_count(state, "d") == 10
  meta = helpers.load_meta(str(tmp_path), 2)
  assert meta["data_position"] == (10 if critic_batches == "fresh" else 2)


def test_d_every_two_steps_d_on_every_second_iteration(tmp_path):
  config = helpers.tiny_config(**{"train.d_every": 2})
  state = _flat(train.train_and_evaluate(config, str(tmp_path)))
  assert _update_count(state, "g") == 4
  assert _update_count(state, "d") == 2
  rows = helpers.read_metrics(str(tmp_path))
  assert [("d/total" in r) for r in rows] == [False, True, False, True]


def _two_phase_config():
  config = helpers.tiny_config()
  config.phases.finetune = {"start_step": 2, "freeze_bn": True, "lr": {"g": 5e-5}}
  return config


def test_two_phases_switch_rate_and_freeze_batchnorm_and_resume_in_phase_two(
    tmp_path, monkeypatch):
  workdir = str(tmp_path / "a")
  want = _flat(train.train_and_evaluate(_two_phase_config(), workdir))
  rows = helpers.read_metrics(workdir)
  np.testing.assert_allclose([r["g/lr"] for r in rows], [1e-3, 1e-3, 5e-5, 5e-5], rtol=1e-6)
  s2, s4 = helpers.load_state(workdir, 2), helpers.load_state(workdir, 4)
  g_stats = [k for k in s2 if k.startswith("nets/g/collections/batch_stats")]
  g_params = [k for k in s2 if k.startswith("nets/g/params")]
  assert g_stats and g_params
  for k in g_stats:  # frozen in phase 2: running statistics unchanged
    np.testing.assert_array_equal(s4[k], s2[k], err_msg=k)
  assert any(not np.array_equal(s4[k], s2[k]) for k in g_params)  # still trained
  # Killed in phase 2 (after step 3), resumed in phase 2.
  got = _crash_then_resume(_two_phase_config, str(tmp_path / "b"), monkeypatch)
  _assert_equal_states(got, want)


def _assert_close_runs(workdir_a, workdir_b, step):
  """Same losses and (almost all) same params, allowing reduction-order noise."""
  ma, mb = helpers.read_metrics(workdir_a), helpers.read_metrics(workdir_b)
  # Step 1 sees the same parameters on every topology: only the order of sharded
  # reductions differs, so its losses must agree tightly. After it, Adam's first
  # updates (~lr * sign(g)) turn rounding in near-zero gradients into parameter
  # differences that grow over the 4 steps (measured up to 2.2e-3 relative on d/r1
  # at step 4). A wrong statistic or a missing shard would move the losses by percents.
  for i, (ra, rb) in enumerate(zip(ma, mb, strict=True)):
    for k in ("g/total", "d/total", "g/l1", "d/r1"):
      np.testing.assert_allclose(ra[k], rb[k], rtol=2e-5 if i == 0 else 1e-2, atol=1e-6,
                                 err_msg=f"{k} at step {ra['step']}")
  sa, sb = helpers.load_state(workdir_a, step), helpers.load_state(workdir_b, step)
  assert sa.keys() == sb.keys()
  n_far = n_total = 0
  for k in sa:
    if sa[k].dtype.kind != "f":
      np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
      continue
    # Adam's first updates are ~lr * sign(g): a gradient that is zero up to
    # rounding may flip sign between reduction orders, so count outliers. With the
    # patch-matmul convolution gradients about 9 % of the tiny model's elements move
    # by more than 1e-4 after 4 steps (0.1 % before them); a gradient missing a shard
    # would move all of them.
    n_far += int(np.sum(np.abs(sa[k] - sb[k]) > 1e-4))
    n_total += sa[k].size
  assert n_far <= 0.2 * n_total, (n_far, n_total)


def test_four_devices_and_two_processes_match_one_device(uninterrupted, tmp_path):
  workdir_1, _ = uninterrupted
  # 4 virtual CPU devices in one process.
  wd4 = str(tmp_path / "four")
  r = helpers.run_main([*helpers.cli_args(), f"--workdir={wd4}"],
                       env_extra={"JAX_NUM_CPU_DEVICES": "4"})
  assert r.returncode == 0, r.stderr[-3000:]
  assert "4 global devices" in r.stderr
  _assert_close_runs(workdir_1, wd4, 4)

  # 2 processes x 2 devices through jax.distributed on localhost.
  wd2 = str(tmp_path / "two")
  port = 23000 + os.getpid() % 2000
  procs = [subprocess.Popen(
      [sys.executable, "-m", "inpaint_jax.main", *helpers.cli_args(), f"--workdir={wd2}",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
      cwd=helpers.REPO, env={**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "2",
                             **helpers.FAST_COMPILE_ENV},
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs, strict=True):
    assert p.returncode == 0, out[-3000:]
  assert "process 1/2" in outs[1]
  _assert_close_runs(workdir_1, wd2, 4)


def _start(workdir, env_extra=None, **overrides):
  args = helpers.cli_args(**overrides)
  return subprocess.Popen([sys.executable, "-m", "inpaint_jax.main", *args,
                           f"--workdir={workdir}"], cwd=helpers.REPO,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV,
                               **(env_extra or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_during_async_save_then_resume_equals_uninterrupted(uninterrupted, tmp_path):
  workdir_ref, _ = uninterrupted
  ref = helpers.load_state(workdir_ref, 4)
  workdir = str(tmp_path)
  # Checkpoint every step; SIGKILL right after the step-3 save has started.
  p = _start(workdir, {train.FAULT_ENV: "sigkill@3"}, checkpoint_every_steps=1)
  out = p.communicate(timeout=600)[0]
  assert p.returncode == -signal.SIGKILL, out[-3000:]
  last = helpers.checkpoint_steps(workdir)[-1]
  assert last in (2, 3)  # step 3 is there only if its async save finished in time
  for step in helpers.checkpoint_steps(workdir):
    helpers.load_state(workdir, step)  # nothing half-written is visible
  r = helpers.run_main([*helpers.cli_args(checkpoint_every_steps=1), f"--workdir={workdir}"])
  assert r.returncode == 0, r.stderr[-3000:]
  assert f"at step {last}" in r.stderr
  got = helpers.load_state(workdir, 4)
  for k in ref:
    np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  workdir = str(tmp_path)
  metrics = os.path.join(workdir, "metrics.jsonl")
  p = _start(workdir, total_steps=100_000, checkpoint_every_steps=100_000)
  deadline = time.time() + 300
  while not (os.path.exists(metrics) and helpers.read_metrics(workdir)):
    assert p.poll() is None, p.communicate()[0][-3000:]
    assert time.time() < deadline
    time.sleep(0.05)
  p.send_signal(signal.SIGTERM)
  out = p.communicate(timeout=300)[0]
  assert p.returncode == 0, out[-3000:]
  assert "Stopping at step" in out
  steps = helpers.checkpoint_steps(workdir)
  assert len(steps) == 1 and 1 <= steps[0] < 100_000
  assert int(helpers.load_state(workdir, steps[0])["step"]) == steps[0]


def test_validation_scores_and_keeps_the_best_checkpoint(tmp_path):
  config = helpers.tiny_config(**{"eval_every_steps": 2, "best_metric": "ssim", "keep_best": 1,
                                  "eval.masks": "irregular_20_30", "eval.periodic_n_images": 4,
                                  "eval.metrics": "psnr,ssim,l1"})
  train.train_and_evaluate(config, str(tmp_path))
  rows = [r for r in helpers.read_metrics(str(tmp_path)) if "val/irregular_20_30/ssim" in r]
  assert [r["step"] for r in rows] == [2, 4]
  for r in rows:
    assert 0 < r["val/irregular_20_30/ssim"] <= 1 and r["val/irregular_20_30/psnr"] > 0
  best_dir = os.path.join(str(tmp_path), "checkpoints_best")
  kept = sorted(int(x) for x in os.listdir(best_dir) if x.isdigit())
  best_step = max(rows, key=lambda r: r["val/irregular_20_30/ssim"])["step"]
  assert kept == [best_step]
  assert helpers.checkpoint_steps(str(tmp_path)) == [2, 4]  # the latest ones, as always
