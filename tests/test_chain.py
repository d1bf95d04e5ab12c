"""The commands as one chain: masks -> inpaint (folder mode) -> evaluate, and eval_mode on a
model directory, with a tiny random model directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import helpers
import jax
import numpy as np
import pytest
from PIL import Image

from inpaint_jax import config_lib, evaluate, masks, system
from inpaint_jax import inpaint as inpaint_cli
from inpaint_jax.evaluation import runner
from inpaint_jax.weights import model_dir

N_PHOTOS = 3


@pytest.fixture(scope="module")
def model(tmp_path_factory, fast_compile):
  """configs/lama.py:tiny with random weights, saved as a model directory."""
  config = helpers.tiny_config()
  g_model = system.build(config).nets["g"]
  x = np.zeros((1, 32, 32, 3), np.float32)
  variables = jax.jit(lambda r: g_model.init({"params": r}, x, x[..., :1], train=False))(
      jax.random.PRNGKey(0))
  path = str(tmp_path_factory.mktemp("model") / "md")
  model_dir.save(path, config, {"g": jax.device_get(variables)}, family="lama")
  return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """Photos of different sizes and aspect ratios (cropped to squares by the masks command)."""
  d = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(0)
  for i in range(N_PHOTOS):
    Image.fromarray((rng.random((40 + 4 * i, 48, 3)) * 255).astype(np.uint8)).save(
        d / f"photo{i}.png")
  return str(d)


def test_masks_inpaint_evaluate(model, photos, tmp_path, capsys):
  lama_in, out, scores = tmp_path / "in", tmp_path / "out", tmp_path / "scores.json"
  assert masks.main(["--preset", "square_20_30", "--size", "32", "--images", photos,
                     "--output", str(lama_in)]) == 0
  line = capsys.readouterr().out.strip()
  assert line.startswith(f"wrote {N_PHOTOS} masks (square_20_30, 32x32, seed 0") and line.endswith(
      f"to {lama_in}"), line
  stems = [f"photo{i}" for i in range(N_PHOTOS)]
  assert sorted(os.listdir(lama_in)) == sorted(
      ["maskset.json"] + [f"{s}.png" for s in stems] + [f"{s}_mask000.png" for s in stems])
  # The images are cropped as eval_mode crops its images.
  raw = np.asarray(Image.open(os.path.join(photos, "photo2.png")))
  np.testing.assert_array_equal(np.asarray(Image.open(lama_in / "photo2.png")),
                                np.round(runner.center_square(raw, 32) * 255).astype(np.uint8))

  inpaint_cli.main(["--checkpoint", model, "--input_dir", str(lama_in), "--output_dir",
                    str(out), "--no_progress"])
  assert capsys.readouterr().out.strip().splitlines()[-1] == (
      f"wrote {N_PHOTOS} result(s) to {out}")
  assert sorted(os.listdir(out)) == [f"{s}_mask000.png" for s in stems]

  # The inpaint command's input folder is both the targets and the masks.
  assert evaluate.main(["--predictions", str(out), "--targets", str(lama_in), "--masks",
                        str(lama_in), "--output", str(scores), "--metrics", "psnr,ssim,l1"]) == 0
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert last.startswith(f"scored {N_PHOTOS} images") and str(scores) in last
  res = json.loads(scores.read_text())
  assert res["n_images"] == N_PHOTOS
  assert sorted(res["per_image"]) == [f"{s}_mask000" for s in stems]
  assert sum(b["n_images"] for b in res["bins"].values()) == N_PHOTOS
  for s in stems:   # each result was scored against its own image
    pred = np.asarray(Image.open(out / f"{s}_mask000.png"), np.float64) / 255
    target = np.asarray(Image.open(lama_in / f"{s}.png"), np.float64) / 255
    hole = np.asarray(Image.open(lama_in / f"{s}_mask000.png")) > 127
    np.testing.assert_array_equal(pred[~hole], target[~hole])   # the composite
    assert abs(res["per_image"][f"{s}_mask000"]["l1"] - np.abs(pred - target).mean()) < 1e-6
  # A baseline reads the same folder (the masks name the set).
  assert evaluate.main(["--baseline", "mean_fill", "--targets", str(lama_in), "--masks",
                        str(lama_in), "--output", str(tmp_path / "mean.json"), "--metrics",
                        "psnr,l1"]) == 0
  assert json.loads((tmp_path / "mean.json").read_text())["n_images"] == N_PHOTOS
  # A missing result is named.
  os.remove(out / "photo1_mask000.png")
  assert evaluate.main(["--predictions", str(out), "--targets", str(lama_in), "--masks",
                        str(lama_in), "--output", str(scores)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "missing in --predictions: photo1_mask000" in err, err


def test_masks_images_refusals(photos, tmp_path, capsys):
  bad = tmp_path / "bad"
  bad.mkdir()
  Image.new("RGB", (8, 8)).save(bad / "unmasked.png")
  cases = [
      (["--images", str(bad)], "would be read as masks"),
      (["--images", str(tmp_path / "nope")], "no such folder"),
      (["--images", photos, "--n", "9"], f"--n 9: --images {photos} has {N_PHOTOS} image(s)"),
      ([], "--n is required"),
  ]
  for args, needle in cases:
    assert masks.main(["--preset", "square_20_30", "--size", "32", "--output",
                       str(tmp_path / "o"), *args]) == 2, args
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, (args, err)
  assert masks.main(["--preset", "square_20_30", "--size", "32", "--images", photos,
                     "--output", photos]) == 2
  assert "must differ from --images" in capsys.readouterr().err


def test_eval_mode_on_a_model_directory(model, photos, tmp_path, fast_compile):
  config = helpers.tiny_config(**{"data.source": "folder", "data.folder": photos})
  with config.unlocked():
    config.eval = config_lib.eval_settings(config)
    config.eval.update(dict(metrics="psnr,ssim,l1", masks="square_20_30", n_images=2))
  out = runner.run(config, str(tmp_path / "scores"), checkpoint=model)
  res = out["square_20_30"]
  assert res["n_images"] == 2 and res["step"] is None and res["checkpoint"] == model
  assert res["model"].startswith("ffc_resnet") and np.isfinite(res["psnr"])
  assert sorted(os.listdir(tmp_path / "scores" / "eval" / "square_20_30")) == [
      "report.png", "results.json", "results.md"]
  # The model directory itself as the workdir: the results go into it.
  assert runner.run(config, model)["square_20_30"]["psnr"] == res["psnr"]
  assert os.path.isfile(os.path.join(model, "eval", "square_20_30", "results.json"))
  assert model_dir.is_model_dir(model)


@pytest.mark.slow
def test_eval_mode_command_on_a_model_directory(model, photos, tmp_path):
  # From another working directory, with the config by name (a packaged config).
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  r = subprocess.run(
      [sys.executable, "-m", "inpaint_jax.eval_mode", "--config=lama:tiny",
       f"--checkpoint={model}", f"--workdir={tmp_path / 'w'}", "--masks=square_20_30",
       "--n_images=2", "--metrics=psnr,l1", "--batch_size=2",
       "--config.data.source=folder", f"--config.data.folder={photos}"],
      cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  folder = tmp_path / "w" / "eval" / "square_20_30"
  assert f"-> {folder}" in r.stdout.strip().splitlines()[-1]
  res = json.loads((folder / "results.json").read_text())
  assert res["n_images"] == 2 and res["metrics"] == ["psnr", "l1"]
