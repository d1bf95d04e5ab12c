"""A tiny DFNet training run with the SN-PatchGAN option: every term logged, D trains."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint_jax import train
from tests import helpers

pytest.importorskip("inpaint_jax.losses.perceptual", reason="needs the DFNet loss terms")
pytestmark = pytest.mark.usefixtures("fast_compile")

dfnet_config = helpers.config_module("dfnet")


def test_tiny_sngan_run_logs_every_term_and_trains_d(tmp_path):
  config = dfnet_config.get_config("tiny,sngan")
  state = train.train_and_evaluate(config, str(tmp_path))
  assert helpers.checkpoint_steps(str(tmp_path)) == [2, 4]
  rows = helpers.read_metrics(str(tmp_path))
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  terms = [f"g/{label}" for label in config.losses.generator] + ["g/total", "d/adv", "d/total"]
  for key in terms:
    assert all(np.isfinite(r[key]) for r in rows), key
  for r in rows:
    parts = sum(r[f"g/{label}"] for label in config.losses.generator)
    np.testing.assert_allclose(r["g/total"], parts, rtol=1e-5)
  # The official TV quirk: the term is evaluated on the targets, so it is the same
  # function of the data whatever the generator does, and it never trains anything.
  assert "g/tv_s0" in rows[0] and "g/reconstruction/s0" in rows[0]
  d_losses = [r["d/adv"] for r in rows]
  assert len(set(d_losses)) > 1  # D's hinge loss moves: D is stepped
  spectral = state.nets["d"].collections["spectral"]
  u = np.asarray(spectral["conv_0"]["u"])
  assert np.isclose(np.linalg.norm(u), 1.0, atol=1e-5)
