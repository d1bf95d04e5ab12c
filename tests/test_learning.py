"""The learning benchmark: held-out split, hole metrics, periodic scores, time budget, command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from inpaint_jax import config_lib
from inpaint_jax.data import sources
from inpaint_jax.evaluation import baselines, learning, runner
from inpaint_jax.metrics import pixel, structural
from tests import helpers


def test_embedded_splits_are_disjoint_and_make_up_all_photos():
  names = {split: {os.path.basename(p) for p in
                   sources.build_source({"embedded_split": split}).paths}
           for split in sources.EMBEDDED_SPLITS}
  assert names["held_out"] == set(sources.EMBEDDED_HELD_OUT)
  assert not names["train"] & names["held_out"]
  assert names["train"] | names["held_out"] == names["all"] == set(sources.EMBEDDED_PHOTOS)
  # The stereo pair of one scene stays on one side.
  assert {"motorcycle_left.png", "motorcycle_right.png"} <= names["train"]
  with pytest.raises(ValueError, match="data.embedded_split: unknown value 'test'; accepted"):
    sources.build_source({"embedded_split": "test"})


def test_configs_train_on_the_training_split_and_evaluate_on_held_out_photos():
  for name in ("lama:demo", "dfnet:demo", "rfr:demo", "dgfnet:demo", "dcf:demo", "dpnet:demo"):
    config = config_lib.load_config_file(name)
    assert config.data.embedded_split == "train", name
    ev = config_lib.eval_settings(config)
    src = runner.eval_source(config, ev)
    assert {os.path.basename(p) for p in src.paths} == set(sources.EMBEDDED_HELD_OUT), name


def test_hole_metrics_match_numpy_on_the_hole_pixels():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(3, 24, 24, 3)).astype(np.float32)
  b = rng.uniform(size=(3, 24, 24, 3)).astype(np.float32)
  hole = np.zeros((3, 24, 24), np.float32)
  hole[0, 4:10, 4:12] = 1
  hole[1, :, :5] = 1
  hole[2] = 1
  got = {k: np.asarray(v) for k, v in pixel.hole_metrics(a, b, hole).items()}
  for i in range(3):
    h = hole[i] > 0.5
    d = a[i][h] - b[i][h]
    np.testing.assert_allclose(got["l1_hole"][i], np.abs(d).mean(), rtol=1e-5)
    np.testing.assert_allclose(got["psnr_hole"][i], -10 * np.log10((d ** 2).mean()), rtol=1e-5)
    want_ssim = np.asarray(structural.ssim_map(a[i:i + 1], b[i:i + 1]))[0][h].mean()
    np.testing.assert_allclose(got["ssim_hole"][i], want_ssim, rtol=1e-5)
  # All-hole: the SSIM map's mean is LaMa-mode SSIM.
  np.testing.assert_allclose(got["ssim_hole"][2],
                             np.asarray(structural.ssim(a[2:], b[2:], mode="lama"))[0],
                             rtol=1e-5)
  # A perfect fill of the hole of a composite: zero L1 in the hole.
  comp = np.where(hole[..., None] > 0.5, b, a)
  assert np.all(np.asarray(pixel.hole_metrics(comp, b, hole)["l1_hole"]) == 0)


def _learning_config(**kw):
  config = helpers.tiny_config()
  with config.unlocked():
    learning.configure(config, every=2, steps=4, masks="irregular_20_30,square_20_30",
                       n_examples=5, **kw)
  return config


def test_periodic_eval_cycles_the_held_out_photos_with_new_masks_on_every_set():
  config = _learning_config()
  pe = runner.PeriodicEval(config)
  assert [name for name, _ in pe.sets] == ["irregular_20_30", "square_20_30"]
  for (_, holes), images in zip(pe.sets, pe.images_by_set, strict=True):
    assert len(holes) == len(images) == 5 and holes.shape[1] == config.data.image_size
    # Three held-out photos: examples 3 and 4 are photos 0 and 1 again, with other masks.
    np.testing.assert_array_equal(images[3], images[0])
    np.testing.assert_array_equal(images[4], images[1])
    assert not np.array_equal(holes[3], holes[0])
  scores = pe.score(lambda img, hole: baselines.run_batch("mean_fill", img, hole))
  for set_name in ("irregular_20_30", "square_20_30"):
    for m in ("psnr", "ssim", "l1", "psnr_hole", "ssim_hole", "l1_hole"):
      assert np.isfinite(scores[f"val/{set_name}/{m}"]), (set_name, m)
    # Only the hole differs from the target: whole-image L1 = hole L1 x hole fraction < it.
    assert scores[f"val/{set_name}/l1"] < scores[f"val/{set_name}/l1_hole"]


def test_configure_refuses_overlapping_or_half_given_folders(tmp_path):
  config = helpers.tiny_config()
  with config.unlocked():
    with pytest.raises(ValueError, match="go together"):
      learning.configure(config, every=2, train_folder=str(tmp_path))
    with pytest.raises(ValueError, match="the same folder as --train_folder"):
      learning.configure(config, every=2, train_folder=str(tmp_path),
                         held_out_folder=str(tmp_path) + "/")
    with pytest.raises(ValueError, match="--every=0"):
      learning.configure(config, every=0)


def test_read_curve_keeps_the_last_line_of_a_step_and_skips_a_cut_line(tmp_path):
  rows = [{"step": 2, "loss": 1.0},
          {"step": 2, "time/train_minutes": 0.5, "val/a/psnr_hole": 10.0},
          {"step": 4, "time/train_minutes": 1.0, "val/a/psnr_hole": 11.0},
          {"step": 2, "time/train_minutes": 0.6, "val/a/psnr_hole": 10.5}]
  with open(tmp_path / "metrics.jsonl", "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "ti')
  curve = learning.read_curve(str(tmp_path))
  assert curve == [{"step": 2, "train_minutes": 0.6, "a/psnr_hole": 10.5},
                   {"step": 4, "train_minutes": 1.0, "a/psnr_hole": 11.0}]


def _learning_cmd(workdir, *extra):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  return subprocess.run(
      [sys.executable, "-m", "inpaint_jax.learning", "--config=configs/lama.py:tiny",
       f"--workdir={workdir}", "--every=2", "--n_examples=3", "--masks=irregular_20_30",
       *extra], cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=600)


def test_learning_command_writes_the_curve_and_baselines_and_a_time_budget_resumes(tmp_path):
  workdir = str(tmp_path / "learn")
  # A budget that the first step exceeds: the run saves step 1 and stops, scored there.
  proc = _learning_cmd(workdir, "--steps=4", "--minutes=0.0001")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert helpers.checkpoint_steps(workdir) == [1]
  assert helpers.load_meta(workdir, 1)["train_seconds"] > 0
  first = json.load(open(os.path.join(workdir, "learning.json")))
  assert [p["step"] for p in first["curve"]] == [1]
  # Resumed without a time limit: on to step 4, scored at 2 and 4.
  proc = _learning_cmd(workdir, "--steps=4")
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.load(open(os.path.join(workdir, "learning.json")))
  assert [p["step"] for p in out["curve"]] == [1, 2, 4]
  minutes = [p["train_minutes"] for p in out["curve"]]
  assert minutes == sorted(minutes) and minutes[0] > 0
  assert out["train_split"] == "embedded:train" and out["held_out_split"] == "embedded:held_out"
  assert set(out["baselines"]) == set(baselines.BASELINES)
  for name, scores in out["baselines"].items():
    for m in learning.CURVE_METRICS:
      assert np.isfinite(scores[f"irregular_20_30/{m}"]), (name, m)
    assert set(out["beats"][name]) == set(scores)
  assert out["final"]["step"] == 4
  assert "wrote " in proc.stdout and "beats on every metric" in proc.stdout
  assert os.path.getsize(os.path.join(workdir, "learning.png")) > 1000
  # --report_only rewrites the files from the workdir without training.
  os.remove(os.path.join(workdir, "learning.json"))
  proc = _learning_cmd(workdir, "--steps=4", "--report_only")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.load(open(os.path.join(workdir, "learning.json")))["curve"] == out["curve"]
