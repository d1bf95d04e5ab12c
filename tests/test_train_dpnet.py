"""A tiny DPNet training run: every term logged, D and the PAM scales train, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_jax import train
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

dpnet_config = helpers.config_module("dpnet")


def test_tiny_run_logs_every_term_and_trains_everything(tmp_path):
  config = dpnet_config.get_config("tiny")
  state = train.train_and_evaluate(config, str(tmp_path))
  assert helpers.checkpoint_steps(str(tmp_path)) == [2, 4]
  rows = helpers.read_metrics(str(tmp_path))
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert sorted(config.losses.generator) == ["adv", "hole", "tv", "valid"]
  terms = [f"g/{label}" for label in config.losses.generator] + ["g/total", "d/adv", "d/total"]
  for key in terms:
    assert all(np.isfinite(r[key]) for r in rows), key
  for r in rows:
    parts = sum(r[f"g/{label}"] for label in config.losses.generator)
    np.testing.assert_allclose(r["g/total"], parts, rtol=1e-5)
  assert len({r["d/adv"] for r in rows}) > 1  # D is stepped
  g = state.nets["g"].params
  # PAM's residual scales start at 0 and receive gradients: after 4 Adam steps they moved.
  assert all(abs(float(g[k])) > 0 for k in g if k.startswith("pam_"))
  assert sum(k.startswith("pam_") for k in g) == 4
  # the checkpoint holds the region-norm affine parameters of both regions
  flat = helpers.load_state(str(tmp_path), 4)
  assert any(k.endswith("enc_1_norm/hole_gamma") for k in flat)
