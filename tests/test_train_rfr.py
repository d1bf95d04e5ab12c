"""RFR-Net family: config sizes, a tiny two-phase training run with every official term."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import train
from inpaint_jax.backbones import vgg
from inpaint_jax.models.rfr.network import RFRNet, feature_channels
from inpaint_jax.weights import params_file
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

rfr_config = helpers.config_module("rfr")


def _n_params(fields) -> int:
  net = RFRNet(**fields)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                                           jnp.zeros((1, 16, 16, 1)), train=False))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


def test_published_parameter_counts_and_recipe():
  # n_rec does not change the count (shared weights); 1 keeps the trace short.
  for variant, want in (("paris", 31_224_065), ("small_holes", 30_929_153)):
    c = rfr_config.get_config(variant)
    fields = {k: v for k, v in c.generator.items() if k != "name"}
    assert _n_params({**fields, "n_rec": 1}) == want, variant
    assert c.discriminator.name == "none"
  c = rfr_config.get_config("paris")
  weights = {k: v["weight"] for k, v in c.losses.generator.items()}
  assert weights == {"hole": 6.0, "valid": 1.0, "perceptual_out": 0.05, "style_out": 120.0,
                     "perceptual_comp": 0.05, "style_comp": 120.0, "tv": 0.1}
  assert c.losses.generator.perceptual_comp.output == "composite"
  assert c.optim.g.lr == 2e-4 and c.total_steps == 600_000
  assert c.phases.finetune.to_dict() == {"start_step": 400_000, "freeze_bn": True,
                                             "lr": {"g": 5e-5}}
  with pytest.raises(ValueError, match="iters"):
    rfr_config.get_config("paris,iters=12")


def test_features_for_reuse():
  net = RFRNet(ngf=4, tail_ch=8, n_rec=2, return_features=True)
  image = jnp.asarray(np.random.default_rng(0).random((1, 32, 48, 3)), jnp.float32)
  hole = jnp.zeros((1, 32, 48, 1)).at[:, 8:20, 10:30].set(1.0)
  out, _ = jax.eval_shape(lambda: net.init_with_output(jax.random.key(0), image, hole,
                                                       train=False))
  ch = feature_channels(4, 8)
  scale = {"h1": 1, "h2": 2, "h4": 4, "h8": 8, "h16": 16}
  for key, s in scale.items():
    assert out["features"][key].shape == (1, 32 // s, 48 // s, ch[key]), key
  assert out["features"]["mask2"].shape == (1, 16, 24, 1)
  assert out["pred"].shape == (1, 32, 48, 3)
  with pytest.raises(ValueError, match="multiples of 16"):
    jax.eval_shape(lambda: net.init(jax.random.key(0), image[:, :24], hole[:, :24],
                                    train=False))


@pytest.fixture(scope="module")
def random_vgg16(tmp_path_factory):
  """A randomly initialised VGG-16 as a converted `.npz` (the loss terms only need a net)."""
  shapes = jax.eval_shape(lambda: vgg.VGG(16).init(jax.random.key(0),
                                                     jnp.zeros((1, 32, 32, 3))))["params"]
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda s: (rng.normal(size=s.shape) * np.sqrt(2.0 / np.prod(s.shape[:-1]))
                 ).astype(np.float32), shapes)
  path = tmp_path_factory.mktemp("vgg") / "vgg16.npz"
  params_file.save_params(path, {"params": params}, "vgg16")
  return str(path)


def test_tiny_two_phase_run_logs_every_term_and_freezes_bn(tmp_path, random_vgg16):
  config = rfr_config.get_config(f"tiny,vgg16={random_vgg16}")
  assert set(config.losses.generator) == {"hole", "valid", "perceptual_out", "style_out",
                                          "perceptual_comp", "style_comp", "tv"}
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)
  assert helpers.checkpoint_steps(workdir) == [2, 4]
  rows = helpers.read_metrics(workdir)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for r in rows:
    assert r["g/grad_norm"] > 0
    parts = sum(r[f"g/{label}"] for label in config.losses.generator)
    assert np.isfinite(parts) and parts > 0
    np.testing.assert_allclose(r["g/total"], parts, rtol=1e-5)
  np.testing.assert_allclose([r["g/lr"] for r in rows], [1e-3, 1e-3, 2.5e-4, 2.5e-4],
                             rtol=1e-6)
  s2, s4 = helpers.load_state(workdir, 2), helpers.load_state(workdir, 4)
  stats = [k for k in s2 if k.startswith("nets/g/collections/batch_stats")]
  params = [k for k in s2 if k.startswith("nets/g/params")]
  # The shared recurrence BN and the attention ratio are there and train.
  assert any("/rec/bn2/" in k for k in stats)
  assert any(k.endswith("/att/att/ratio") for k in params)
  # Fine-tuning phase: statistics frozen, parameters still trained.
  for k in stats:
    np.testing.assert_array_equal(s2[k], s4[k], err_msg=k)
  assert any(not np.array_equal(s2[k], s4[k]) for k in params)
