"""Scorer: bins, best / median / worst examples, unavailable metrics."""

import numpy as np
import pytest

from inpaint_jax.evaluation import scoring
from inpaint_jax.metrics import bins


def test_examples_and_bins():
  rng = np.random.default_rng(0)
  sc = scoring.Scorer(["psnr", "ssim", "l1", "lpips"], n_examples=2, thumb_side=16)
  target = rng.random((12, 24, 24, 3)).astype(np.float32)
  noise = np.linspace(0.0, 0.3, 12, dtype=np.float32)[:, None, None, None]
  pred = np.clip(target + noise * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
  hole = np.zeros((12, 24, 24), np.float32)
  for i in range(12):
    hole[i, :2 * i] = 1   # hole fraction i / 12
  for s in range(0, 12, 5):   # uneven batches
    names = [f"im{i}" for i in range(s, min(s + 5, 12))]
    sc.add(pred[s:s + 5], target[s:s + 5], hole[s:s + 5], names)
  res = sc.results()
  assert res["n_images"] == 12 and res["lpips"] is None and "lpips" in res["unavailable"]
  assert res["rank_metric"] == "ssim"
  idx = bins.bin_index(np.arange(12) / 12)
  for b, name in enumerate(bins.bin_names()):
    sel = np.flatnonzero(idx == b)
    row = res["bins"][name]
    assert row["n_images"] == len(sel)
    if len(sel):
      want = np.mean([res["per_image"][f"im{i}"]["psnr"] for i in sel])
      assert row["psnr"] == pytest.approx(want)
  ex = sc.examples()
  assert [e["name"] for e in ex["best"]] == ["im0", "im1"]       # least noise
  assert [e["name"] for e in ex["worst"]] == ["im11", "im10"]
  assert len(ex["median"]) == 2 and not {e["name"] for e in ex["median"]} & {"im0", "im11"}
  assert ex["best"][0]["images"][0].shape == (16, 16, 3)


def test_parse_metrics():
  assert scoring.parse_metrics("fid, psnr") == ["psnr", "fid"]
  with pytest.raises(ValueError, match="--metrics: unknown metric"):
    scoring.parse_metrics("psnr,mse")
