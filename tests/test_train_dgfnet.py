"""A tiny DGFNet training run: every per-branch term logged, D trains, checkpoints written,
and the last two steps run the BN-frozen fine-tuning phase (lower rates, running
statistics unchanged, parameters still trained)."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import train
from inpaint_jax.backbones import vgg
from inpaint_jax.models import api as adapters
from inpaint_jax.weights import params_file
from tests import helpers

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_compile")]

dgfnet_config = helpers.config_module("dgfnet")


def _random_vgg16(path: pathlib.Path) -> str:
  """A VGG-16 weights file with random weights (the loss terms only need some network)."""
  shapes = jax.eval_shape(lambda: vgg.VGG(16).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  rng = np.random.default_rng(0)

  def draw(s):
    if len(s.shape) == 4:
      return (rng.standard_normal(s.shape) * np.sqrt(2.0 / np.prod(s.shape[:3]))).astype(
          np.float32)
    return np.zeros(s.shape, np.float32)

  params_file.save_params(path, {"params": jax.tree.map(draw, shapes["params"])}, "vgg16")
  return str(path)


def test_tiny_run_logs_every_branch_term(tmp_path):
  weights = _random_vgg16(tmp_path / "vgg16.npz")
  config = dgfnet_config.get_config(f"tiny,vgg16={weights}")
  assert config.phases.finetune.freeze_bn
  config.phases.finetune.start_step = 2   # steps 3 and 4 fine-tune
  labels = list(config.losses.generator)
  for branch in ("coarse_", "texture_", ""):
    for kind in ("hole", "valid", "perceptual", "style"):
      assert f"{branch}{kind}" in labels
  workdir = tmp_path / "run"
  state = train.train_and_evaluate(config, str(workdir))
  assert helpers.checkpoint_steps(str(workdir)) == [2, 4]
  rows = helpers.read_metrics(str(workdir))
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for key in [f"g/{label}" for label in labels] + ["g/total", "d/adv", "d/total"]:
    assert all(np.isfinite(r[key]) for r in rows), key
  for r in rows:
    parts = sum(r[f"g/{label}"] for label in labels)
    np.testing.assert_allclose(r["g/total"], parts, rtol=1e-5)
    assert r["g/texture_hole"] > 0 and r["g/coarse_style"] > 0
  assert [r["g/lr"] for r in rows] == pytest.approx([1e-3, 1e-3, 5e-5, 5e-5])
  assert len({r["d/adv"] for r in rows}) > 1
  assert "texture_net" in state.nets["g"].params
  assert "encoder_t" in state.nets["g"].params
  # The fine-tuning phase: every BatchNorm frozen (running statistics as at step 2), the
  # parameters still trained.
  s2, s4 = helpers.load_state(str(workdir), 2), helpers.load_state(str(workdir), 4)
  g_stats = [k for k in s2 if k.startswith("nets/g/collections/batch_stats")]
  g_params = [k for k in s2 if k.startswith("nets/g/params")]
  assert len(g_stats) > 50 and g_params
  for k in g_stats:
    np.testing.assert_array_equal(s4[k], s2[k], err_msg=k)
  assert any(not np.array_equal(s4[k], s2[k]) for k in g_params)


def test_ablation_configs_drop_their_parts():
  base = dgfnet_config.get_config("no_texture")
  assert not base.generator.texture_branch
  assert not [k for k in base.losses.generator if k.startswith("texture_")]
  assert dgfnet_config.get_config("no_dpfm").generator.fusion == "concat"
  full = dgfnet_config.get_config()
  assert full.generator.fusion == "dpfm" and full.generator.texture_branch
  weights = {k: v["weight"] for k, v in full.losses.generator.items()}
  assert full.losses.generator.adv.fn == "hinge_g" and full.losses.generator.adv.form == "relu"
  assert full.generator.feature_encoders and full.generator.encoder_widths == (32, 32)
  assert weights == {"coarse_hole": 6.0, "coarse_valid": 1.0, "coarse_perceptual": 0.1,
                     "coarse_style": 180.0, "texture_hole": 50.0, "texture_valid": 50.0,
                     "texture_perceptual": 0.1, "texture_style": 180.0, "hole": 50.0,
                     "valid": 50.0, "perceptual": 0.1, "style": 180.0, "adv": 0.1}
  assert full.losses.generator.texture_style.target == "texture_target"
  assert full.optim.g.lr == 5e-4 and full.phases.finetune.lr.g == 5e-5
  with pytest.raises(ValueError, match="unknown variant"):
    dgfnet_config.get_config("huge")
  adapter = adapters.get_adapter(full)
  assert adapter.size_multiple == 16 and adapter.pad_mode == "symmetric"
