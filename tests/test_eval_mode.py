"""Eval mode: a tiny run's checkpoint and a baseline scored on a folder split with mask sets."""

import json
import os

import jax
import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image

from inpaint_jax import config_lib, system
from inpaint_jax.checkpoint import Checkpointer
from inpaint_jax.data import mask_sets as masks
from inpaint_jax.evaluation import runner as eval_mode


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  d = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(0)
  for i in range(5):
    Image.fromarray((rng.random((40, 48 + 4 * i, 3)) * 255).astype(np.uint8)).save(
        d / f"p{i}.png")
  return str(d)


def _config(photos, **eval_fields):
  config = tiny_config(**{"data.source": "folder", "data.folder": photos, "total_steps": 2,
                          "checkpoint_every_steps": 2})
  with config.unlocked():
    config.eval = config_lib.eval_settings(config)
    config.eval.update(dict(metrics="psnr,ssim,l1", **eval_fields))
  return config


@pytest.fixture
def fast_compile():
  # Small programs: XLA's optimisation passes cost more than they save.
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def _save_checkpoint(config, workdir, step):
  """A checkpoint as the trainer writes it, of freshly initialised weights (no training)."""
  sys_ = system.build(config)
  state = jax.jit(lambda k: system.init_state(sys_, k))(jax.random.PRNGKey(0))
  ckpt = Checkpointer(workdir, max_to_keep=1, async_save=False)
  ckpt.save(step, state, {"step": step, "config": config.to_json_best_effort()}, force=True)
  ckpt.close()


def test_checkpoint(photos, tmp_path, fast_compile):
  config = _config(photos, masks="square_20_30,irregular_40_50", n_images=3)
  workdir = str(tmp_path / "run")
  _save_checkpoint(config, workdir, 2)
  out = eval_mode.run(config, workdir)
  assert set(out) == {"square_20_30", "irregular_40_50"}
  for name in out:
    folder = os.path.join(workdir, "eval", name)
    assert sorted(os.listdir(folder)) == ["report.png", "results.json", "results.md"]
    disk = json.load(open(os.path.join(folder, "results.json")))
    assert disk["n_images"] == 3 and disk["step"] == 2 and disk["image_size"] == 32
    assert set(disk["bins"]) and np.isfinite(disk["psnr"])
  # Periodic evaluation gives the same numbers on the same images and masks.
  with config.unlocked():
    config.eval.periodic_n_images = 3
  pe = eval_mode.PeriodicEval(config)
  g_model, variables, info = eval_mode.load_generator(config, workdir)
  scalars = pe(g_model, variables)
  assert pe.due(0) is False and info["step"] == 2
  for m in ("psnr", "ssim", "l1"):
    assert abs(scalars[f"eval/square_20_30/{m}"] - out["square_20_30"][m]) < 1e-6


def test_baseline_and_mask_folder(photos, tmp_path):
  mdir = str(tmp_path / "mymasks")
  masks.write("square_10_20", 3, 40, 0, mdir)
  config = _config(photos, masks=mdir)
  with config.unlocked():
    config.generator.name = "mean_fill"
  out = eval_mode.run(config, str(tmp_path / "w"))
  res = out["mymasks"]
  assert res["n_images"] == 3 and res["model"] == "mean_fill" and res["image_size"] == 40
  with config.unlocked():
    config.eval.masks = "nothing_here"
  with pytest.raises(ValueError, match="neither a folder nor a mask preset"):
    eval_mode.run(config, str(tmp_path / "w"))
  with config.unlocked():
    config.generator.name = "ffc_resnet"
    config.eval.masks = "square_10_20"
  with pytest.raises(ValueError, match="no checkpoint"):
    eval_mode.run(config, str(tmp_path / "empty"))
