"""A tiny DCF training run: all nine terms and D's loss logged, checkpoints written.

The tiny variant steps D on every iteration (one compiled program; the official
every-2nd-iteration schedule is the trainer's `d_every`, tested in test_train.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_jax import train
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

dcf_config = helpers.config_module("dcf")

# The nine official terms; the VGG ones need the VGG-19 weights (`vgg19=PATH`).
LOGGED = ("charbonnier", "pixel_fft", "pixel_fft_freq", "boundary", "smooth_transition",
          "color_consistency", "progressive_0", "progressive_1", "adv_g")


def test_fixed_variants_switch_both_bugs():
  for arg in ("fixed", "demo,fixed", "tiny,fixed"):
    c = dcf_config.get_config(arg)
    assert c.generator.value_range == c.discriminator.value_range == "symmetric"
    assert c.generator.quarter_crops == "fixed"
    assert {t.space for t in c.losses.generator.values() if "space" in t} == {"symmetric"}
  c = dcf_config.get_config("demo")
  assert (c.generator.value_range, c.generator.quarter_crops) == ("imagenet", "official")
  assert c.train.d_every == 2 and dcf_config.get_config().train.d_every == 2


def test_tiny_run_logs_every_term_and_trains_d(tmp_path):
  config = dcf_config.get_config("tiny")
  state = train.train_and_evaluate(config, str(tmp_path))
  assert helpers.checkpoint_steps(str(tmp_path)) == [2, 4]
  rows = helpers.read_metrics(str(tmp_path))
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for key in [f"g/{k}" for k in LOGGED] + ["g/total"]:
    assert all(np.isfinite(r[key]) for r in rows), key
  for r in rows:
    parts = sum(r[f"g/{label}"] for label in config.losses.generator if f"g/{label}" in r)
    np.testing.assert_allclose(r["g/total"], min(parts, 100.0), rtol=1e-5)
  assert all(np.isfinite(r["d/adv"]) and np.isfinite(r["d/adv/real"]) for r in rows)
  assert len({r["d/adv"] for r in rows}) > 1   # D is stepped
  spectral = state.nets["d"].collections["spectral"]
  assert np.isclose(np.linalg.norm(np.asarray(spectral["model_0"]["u"])), 1.0, atol=1e-5)
