"""The evaluate command: scores vs scikit-image, bins, baselines, one-line errors."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inpaint_jax import evaluate
from inpaint_jax.data import mask_sets as masks
from inpaint_jax.evaluation import baselines


def _write(folder, name, arr):
  os.makedirs(folder, exist_ok=True)
  Image.fromarray(arr).save(os.path.join(folder, name))


@pytest.fixture
def pairs(tmp_path):
  rng = np.random.default_rng(0)
  hole = masks.generate("thick_256", 4, 64, seed=0)
  for i in range(4):
    h, w = (48, 48) if i < 3 else (48, 40)   # two sizes: two batches
    t = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    p = np.clip(t.astype(int) + rng.integers(-20, 21, t.shape), 0, 255).astype(np.uint8)
    _write(tmp_path / "t", f"im{i}.png", t)
    _write(tmp_path / "p", f"im{i}.png", p)
    _write(tmp_path / "m", f"im{i}.png", (hole[i, :h, :w] * 255).astype(np.uint8))
  return tmp_path


def test_scores_match_skimage(pairs):
  out = str(pairs / "r.json")
  assert evaluate.main(["--predictions", str(pairs / "p"), "--targets", str(pairs / "t"),
                        "--masks", str(pairs / "m"), "--output", out]) == 0
  res = json.load(open(out))
  assert res["n_images"] == 4
  ref = {"psnr": [], "ssim": [], "l1": []}
  for i in range(4):
    t = np.asarray(Image.open(pairs / "t" / f"im{i}.png"), np.float64) / 255
    p = np.asarray(Image.open(pairs / "p" / f"im{i}.png"), np.float64) / 255
    ref["psnr"].append(peak_signal_noise_ratio(t, p, data_range=1))
    ref["ssim"].append(structural_similarity(t, p, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=1,
                                             channel_axis=-1))
    ref["l1"].append(np.mean(np.abs(p - t)))
    assert abs(res["per_image"][f"im{i}"]["ssim"] - ref["ssim"][-1]) < 1e-5
  assert abs(res["psnr"] - np.mean(ref["psnr"])) < 1e-3
  assert abs(res["ssim"] - np.mean(ref["ssim"])) < 1e-5
  assert abs(res["l1"] - np.mean(ref["l1"])) < 1e-6
  assert res["lpips"] is None and "lpips" in res["unavailable"] and "fid" in res["unavailable"]
  assert list(res["bins"]) == [f"{10 * b}-{10 * b + 10}%" for b in range(10)]
  assert sum(b["n_images"] for b in res["bins"].values()) == 4
  assert os.path.exists(pairs / "r.md") and os.path.exists(pairs / "r.png")


def test_baselines(pairs):
  res = evaluate.evaluate(str(pairs / "t"), str(pairs / "b.json"), masks=str(pairs / "m"),
                          metrics="psnr,l1", baseline="mean_fill", log=lambda *_: None)
  assert res["metrics"] == ["psnr", "l1"] and np.isfinite(res["psnr"])
  img = np.random.default_rng(1).random((20, 24, 3)).astype(np.float32)
  hole = np.zeros((20, 24), np.float32)
  hole[5:12, 6:15] = 1
  for name in baselines.BASELINES:
    try:
      out = baselines.get(name)(img, hole)
    except RuntimeError as e:   # OpenCV not installed
      assert "opencv" in str(e)
      continue
    assert out.shape == img.shape and out.dtype == np.float32
    # Known pixels are kept (up to the 8-bit rounding of the OpenCV methods).
    np.testing.assert_allclose(out[hole == 0], img[hole == 0], atol=0.5 / 255 + 1e-6)


def test_errors_are_one_line(pairs, capsys):
  os.remove(pairs / "p" / "im1.png")
  _write(pairs / "p", "extra.png", np.zeros((48, 48, 3), np.uint8))
  args = ["--predictions", str(pairs / "p"), "--targets", str(pairs / "t"), "--output",
          str(pairs / "x.json")]
  assert evaluate.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "missing in --targets: extra" in err and "missing in --predictions: im1" in err
  os.remove(pairs / "p" / "extra.png")
  _write(pairs / "p", "im1.png", np.zeros((40, 48, 3), np.uint8))
  assert evaluate.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert "sizes differ" in err and "im1 (prediction 48x40, target 48x48)" in err
  assert evaluate.main(args + ["--metrics", "psnr,bleu"]) == 2
  err = capsys.readouterr().err.strip()
  assert "unknown metric(s) bleu" in err and "accepted: psnr, ssim, l1, lpips, fid" in err
  assert evaluate.main(["--targets", str(pairs / "nope"), "--predictions", str(pairs / "p"),
                        "--output", "x.json"]) == 2
  assert "--targets" in capsys.readouterr().err


@pytest.fixture
def small_pairs(tmp_path):
  """Four 32x32 pairs of one size (one LPIPS compile) with square holes."""
  rng = np.random.default_rng(3)
  hole = masks.generate("square_20_30", 4, 32, seed=0)
  for i in range(4):
    t = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    p = np.clip(t.astype(int) + rng.integers(-30, 31, t.shape), 0, 255).astype(np.uint8)
    _write(tmp_path / "t", f"im{i}.png", t)
    _write(tmp_path / "p", f"im{i}.png", p)
    _write(tmp_path / "m", f"im{i}.png", (hole[i] * 255).astype(np.uint8))
  return tmp_path


def test_lpips_and_fid_through_the_command(small_pairs, monkeypatch):
  import jax

  from inpaint_jax.metrics import fid, frechet, lpips
  from inpaint_jax.weights import params_file

  pairs = small_pairs
  # He-scaled random weights made in numpy: a (jitted or not) Flax init of VGG-16 takes
  # 20-30 s on a 2-core CPU.
  x = np.zeros((1, 32, 32, 3), np.float32)
  shapes = jax.eval_shape(lambda: lpips.LPIPS().init(jax.random.PRNGKey(0), x, x))["params"]
  rng = np.random.default_rng(0)
  he = lambda s: rng.standard_normal(s.shape).astype(np.float32) * np.sqrt(
      2 / np.prod(s.shape[:-1]))
  params = jax.tree.map(lambda s: np.abs(he(s)) if len(s.shape) == 1 else he(s), shapes)
  params_file.save_params(pairs / "lpips.npz", params, lpips.KIND)
  # A small stand-in for the Inception features keeps the 2048-d sqrtm out of the test.
  feats = lambda x: np.asarray(x, np.float64).mean(axis=(1, 2))[:, :2] * [1, 2]
  monkeypatch.setattr(fid, "load", lambda path: feats)
  out = str(pairs / "all.json")
  assert evaluate.main(["--predictions", str(pairs / "p"), "--targets", str(pairs / "t"),
                        "--masks", str(pairs / "m"), "--output", out, "--lpips-weights",
                        str(pairs / "lpips.npz"), "--inception-weights", "stub"]) == 0
  res = json.load(open(out))
  assert res["unavailable"] == {} and res["rank_metric"] == "lpips"
  per = [res["per_image"][f"im{i}"]["lpips"] for i in range(4)]
  assert abs(res["lpips"] - np.mean(per)) < 1e-9 and all(p > 0 for p in per)
  load = lambda d: np.stack([np.asarray(Image.open(pairs / d / f"im{i}.png"), np.float32) / 255
                             for i in range(4)])
  ref = lpips.distance(params_file.load_params(pairs / "lpips.npz", lpips.KIND), load("p"),
                       load("t"))
  np.testing.assert_allclose(per, np.asarray(ref), rtol=1e-5)
  assert abs(res["fid"] - frechet.fid_from_features(feats(load("p")), feats(load("t")))) < 1e-9
  # Bins with fewer than two images have no FID.
  for row in res["bins"].values():
    assert (row["fid"] is None) == (row["n_images"] < 2)
  assert evaluate.main(["--predictions", str(pairs / "p"), "--targets", str(pairs / "t"),
                        "--output", out, "--lpips-weights", str(pairs / "nope.npz")]) == 2
