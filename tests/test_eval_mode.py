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
    assert abs(scalars[f"val/square_20_30/{m}"] - out["square_20_30"][m]) < 1e-6


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


def test_protocol_table_in_the_papers_layout(photos, tmp_path, capsys):
  """eval.protocol: the results as the paper's table, published figures beside them."""
  config = _config(photos, n_images=3)
  with config.unlocked():
    config.generator.name = "mean_fill"
    config_lib.eval_protocol(
        config, title="Table 9", data="paper_photos", metrics="l1,psnr",
        rows=(("squares", "square_20_30"), ("strokes", "train")),
        published=(dict(model="P", row="squares", values=dict(psnr=30.5)),
                   dict(model="Q", row="", note="its own masks", values=dict(l1=0.1)),
                   dict(model="R", row="", values={})))
  assert config.eval.masks == "square_20_30,train" and config.eval.metrics == "l1,psnr"
  workdir = tmp_path / "w"
  out = eval_mode.run(config, str(workdir))
  assert set(out) == {"square_20_30", "train"}
  printed = capsys.readouterr().out
  md = (workdir / "eval" / "table.md").read_text()
  assert printed.endswith(md)
  table = json.loads((workdir / "eval" / "table.json").read_text())
  assert table["mark"] == "published, other data" and table["metrics"] == ["l1", "psnr"]
  assert [r["row"] for r in table["rows"]] == ["squares", "strokes"]
  for r, name in zip(table["rows"], ("square_20_30", "train"), strict=True):
    assert r["n_images"] == 3
    assert r["ours"] == {m: pytest.approx(out[name][m]) for m in ("l1", "psnr")}
  assert table["rows"][0]["published"] == {"P": {"psnr": 30.5}}
  lines = md.splitlines()
  head = next(line for line in lines if line.startswith("| row"))
  for column in ("l1 ↓ mean_fill", "psnr ↑ mean_fill", "psnr P (published, other data)",
                 "psnr R (published, other data)"):
    assert column in head, head
  assert "l1 P " not in head and "Q (" not in head   # P has no L1 figure, Q none beside a row
  squares = next(line for line in lines if line.startswith("| squares"))
  assert "30.5" in squares and "—" in squares
  assert "- Q, its own masks: l1 0.1" in md
  # The training mask generator, drawn with the set's seed: the same masks every time.
  train_masks = eval_mode.mask_sets(config.eval, 3, 32, specs="train",
                                    train_masks=config.masks)[0][1]
  np.testing.assert_array_equal(train_masks, eval_mode.mask_sets(
      config.eval, 3, 32, specs="train", train_masks=config.masks)[0][1])
  assert train_masks.shape == (3, 32, 32) and 0 < train_masks.mean() < 1
  # Scored on the paper's data (named so): the figures are "published".
  with config.unlocked():
    config.eval.data_name = "paper_photos"
  eval_mode.run(config, str(workdir))
  assert json.loads((workdir / "eval" / "table.json").read_text())["mark"] == "published"
  # --masks overriding the protocol's sets: no half-empty table.
  with config.unlocked():
    config.eval.masks = "square_20_30"
  capsys.readouterr()
  eval_mode.run(config, str(tmp_path / "w2"))
  assert "no table for 'Table 9': eval.masks does not hold its row(s) train" in (
      capsys.readouterr().out)
  assert not (tmp_path / "w2" / "eval" / "table.md").exists()
  with config.unlocked():
    config.eval.protocol.published = (dict(model="P", row="circles", values={}),)
  with pytest.raises(ValueError, match=r"eval.protocol.published\[0\].row='circles'"):
    eval_mode.run(config, str(workdir))
