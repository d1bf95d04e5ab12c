"""DCF's parts beyond the golden file: stage masking under jit, the recipe options it
needed (space, scale_by, ramp, nan_value, total clamp / NaN fallback), the BatchNorm
`update` flag, its masks and augmentation, and the converter's errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import losses
from inpaint_jax.config_lib import term
from inpaint_jax.data import augment
from inpaint_jax.models.dcf import torch_keys as convert_dcf
from inpaint_jax.models.dcf.masks import DCFRandomWalkMasks
from inpaint_jax.models.dcf.network import DCF
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.registry import AUGMENTATIONS, MASK_GENERATORS
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

TINY = dict(encoder_depths=(4, 6, 8, 8), decoder_depths=(8, 6, 4, 4), hidden_dim=4)


def test_one_program_serves_every_stage_count():
  gen = DCF(**TINY, refinement_stages=2)
  image = jnp.full((2, 32, 32, 3), 0.5)
  variables = gen.init(jax.random.PRNGKey(0), image, jnp.zeros((2, 32, 32, 1)), train=False)

  def loss(params, mask):
    out, upd = gen.apply({**variables, "params": params}, image, mask, train=True,
                         mutable=["batch_stats"])
    return jnp.mean(out["pred"]), (out, upd)

  run = jax.jit(jax.grad(loss, has_aux=True))
  small = jnp.zeros((2, 32, 32, 1)).at[:, 10:14, 10:14].set(1.0)   # box 4 -> 1 stage
  big = jnp.zeros((2, 32, 32, 1)).at[:, 4:16, 4:16].set(1.0)       # box 12 -> 2 stages
  (g1, (out1, upd1)), (_, (out2, upd2)) = (run(variables["params"], small),
                                           run(variables["params"], big))
  assert run._cache_size() == 1
  assert int(out1["num_stages"]) == 1 and int(out2["num_stages"]) == 2
  assert [float(a) for a in out1["stage_active"]] == [1.0, 0.0]
  assert [float(a) for a in out2["stage_active"]] == [1.0, 1.0]
  before = variables["batch_stats"]

  def moved(upd, name):
    return not np.array_equal(np.asarray(upd["batch_stats"][name]["var"]),
                              np.asarray(before[name]["var"]))

  proc = "progressive_refinement_stage_processors_{}_1"
  fusion = "progressive_refinement_coarse_fusion_0_post_attention_1"
  # Stages the batch does not run leave their statistics alone; the others move.
  assert moved(upd1, proc.format(0)) and not moved(upd1, proc.format(1))
  assert moved(upd2, proc.format(0)) and moved(upd2, proc.format(1))
  assert moved(upd1, fusion) and moved(upd2, fusion)
  # ... and get no gradient.
  assert not np.any(np.asarray(g1["progressive_refinement_scale_convs_1_0"]["kernel"]))
  assert np.any(np.asarray(g1["progressive_refinement_scale_convs_0_0"]["kernel"]))


def test_batchnorm_update_flag():
  bn = BatchNorm()
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 3, 2)) + 2.0
  v = bn.init(jax.random.PRNGKey(0), x, train=False)
  for flag, moved in ((True, True), (False, False)):
    y, upd = bn.apply(v, x, train=True, update=jnp.asarray(flag), mutable=["batch_stats"])
    same = np.array_equal(np.asarray(upd["batch_stats"]["mean"]),
                          np.asarray(v["batch_stats"]["mean"]))
    assert same != moved
    # The output uses batch statistics either way.
    np.testing.assert_allclose(np.asarray(jnp.mean(y, axis=(0, 1, 2))), 0.0, atol=1e-5)


def _inputs(pred, image, mask, **outputs):
  return losses.LossInputs(image=jnp.asarray(image), mask=jnp.asarray(mask),
                           outputs={"pred": jnp.asarray(pred), **outputs}, step=jnp.int32(0))


def test_recipe_space_scale_by_and_nan_value():
  image = np.full((1, 4, 4, 3), 0.5, np.float32)
  pred = image + 0.1
  mask = np.ones((1, 4, 4, 1), np.float32)
  x = _inputs(pred, image, mask, flags=[jnp.float32(1.0), jnp.float32(0.0)])
  recipe = {"unit": term("l1", 1.0), "sym": term("l1", 1.0, space="symmetric"),
            "imnet": term("l1", 1.0, space="imagenet"),
            "on": term("l1", 1.0, scale_by="flags[0]"), "off": term("l1", 1.0, scale_by="flags[1]")}
  _, m = losses.evaluate(recipe, x)
  np.testing.assert_allclose(float(m["unit"]), 0.1, rtol=1e-5)
  np.testing.assert_allclose(float(m["sym"]), 0.2, rtol=1e-5)
  np.testing.assert_allclose(float(m["imnet"]), np.mean(0.1 / np.float32((0.229, 0.224, 0.225))),
                             rtol=1e-5)
  assert float(m["on"]) == pytest.approx(0.1, rel=1e-5) and float(m["off"]) == 0.0
  bad = _inputs(pred * np.nan, image, mask)
  _, m = losses.evaluate({"l1": term("l1", 2.0, nan_value=0.0)}, bad)
  assert float(m["l1"]) == 0.0
  with pytest.raises(ValueError, match="space="):
    losses.evaluate({"x": term("l1", 1.0, space="bgr")}, x)
  with pytest.raises(ValueError, match="scale_by"):
    losses.evaluate({"x": term("l1", 1.0, scale_by="nothing")}, x)


def test_recipe_ramp_clamp_and_nan_fallback():
  image = np.zeros((1, 4, 4, 3), np.float32)
  mask = np.ones((1, 4, 4, 1), np.float32)
  ramp = {"b": term("l1", 5.0, ramp=dict(to=10.0, over_steps=100, every=10))}
  pred = image + 1.0
  for step, weight in ((0, 5.0), (9, 5.0), (10, 5.5), (55, 7.5), (100, 10.0), (1000, 10.0)):
    x = losses.LossInputs(image=jnp.asarray(image), mask=jnp.asarray(mask),
                          outputs={"pred": jnp.asarray(pred)}, step=jnp.int32(step))
    total, _ = losses.evaluate(ramp, x)
    assert float(total) == pytest.approx(weight), step
  with pytest.raises(ValueError, match="step"):
    losses.evaluate(ramp, losses.LossInputs(image=jnp.asarray(image), mask=jnp.asarray(mask),
                                            outputs={"pred": jnp.asarray(pred)}))
  recipe = {"rec": term("l1", 1.0), "big": term("l1", 200.0), "nan": term("hole_l1", 1.0)}
  x = _inputs(pred, image, mask)
  total, _ = losses.evaluate(recipe, x, total=dict(clamp=100.0, nan_fallback=("rec",)))
  assert float(total) == 100.0
  broken = {**recipe, "nan": term("test_dcf_nan", 1.0)}
  total, m = losses.evaluate(broken, x, total=dict(clamp=100.0, nan_fallback=("rec", "big")))
  assert float(total) == pytest.approx(2.0)   # unweighted rec + big
  assert np.isnan(float(m["nan"]))
  with pytest.raises(ValueError, match="nan_fallback"):
    losses.evaluate(recipe, x, total=dict(nan_fallback=("missing",)))


@losses.recipe.LOSSES.register("test_dcf_nan")
def _nan_term(inputs):
  return jnp.float32(np.nan) * jnp.mean(inputs.pred)


def test_random_walk_masks():
  gen = MASK_GENERATORS.get("dcf_random_walk")()
  assert isinstance(gen, DCFRandomWalkMasks)
  rngs = [np.random.default_rng(i) for i in range(12)]
  masks = gen.sample_many(rngs, 64, 64)
  again = gen.sample_many([np.random.default_rng(i) for i in range(12)], 64, 64)
  np.testing.assert_array_equal(masks, again)
  assert masks.dtype == np.float32 and set(np.unique(masks)) <= {0.0, 1.0}
  # At least the 5 % target (checked only between strokes, so it overshoots: brushes of
  # radius 8-20 px cover most of a 64 px image, as in the official code).
  assert np.all(masks.mean(axis=(1, 2)) >= 0.05)
  assert len({m.tobytes() for m in masks}) == len(masks)
  assert gen.sample(np.random.default_rng(0), 32, 32).shape == (32, 32)  # below 40 px too


def test_resize_flip_jitter():
  fn = AUGMENTATIONS.get("resize_flip_jitter")
  image = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
  a = fn(image, 32, np.random.default_rng(3))
  b = fn(image, 32, np.random.default_rng(3))
  assert a.shape == (32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  # Factors within 0.9..1.1: the jittered image stays close to the resized one.
  plain = np.asarray(augment.Image.fromarray(image).resize((32, 32), augment.Image.BILINEAR))
  flipped = plain[:, ::-1]
  diff = min(np.abs(a.astype(int) - plain).mean(), np.abs(a.astype(int) - flipped).mean())
  assert diff < 20
  gray = np.full((8, 8, 3), 100, np.uint8)
  out = augment.color_jitter(gray, np.random.default_rng(0))
  assert len(np.unique(out)) == 1 and 90 <= int(out[0, 0, 0]) <= 110


def test_converter_rejects_other_state_dicts():
  with pytest.raises(convert_dcf.DCFCheckpointError, match="encoder1.conv1.weight"):
    convert_dcf.infer_generator_fields({"en_0.encode.0.conv.weight": np.zeros((4, 4, 3, 3))})
  with pytest.raises(ValueError, match="hidden_dim must equal decoder_depths"):
    DCF(encoder_depths=(4, 6, 8, 8), decoder_depths=(8, 6, 4, 4), hidden_dim=6).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 1)),
        train=False)


def test_demo_computes_all_nine_terms_with_a_random_vgg_without_weights():
  from inpaint_jax.backbones import frozen  # pylint: disable=g-import-not-at-top

  module = helpers.config_module("dcf")
  config = module.get_config("demo")
  labels = {label.split("_")[0] if label.startswith("progressive") else label
            for label in config.losses.generator}
  assert {"charbonnier", "pixel_fft", "perceptual", "style", "boundary", "smooth_transition",
          "color_consistency", "progressive", "adv_g"} <= labels
  assert config.frozen.vgg19.path == "random"
  assert "perceptual" not in module.get_config("tiny").losses.generator

  backbones = frozen.build_backbones(config.frozen)
  first, again = backbones["vgg19"].load(), backbones["vgg19"].load()
  assert len(first["params"]) == 16  # every conv layer of VGG-19, seeded: reproducible
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)
  net = frozen.bind({"vgg19": backbones["vgg19"].module}, {"vgg19": first})
  image = jnp.asarray(np.random.default_rng(0).random((1, 16, 16, 3)), jnp.float32)
  inputs = losses.LossInputs(image=image, mask=jnp.ones((1, 16, 16, 1)),
                             outputs={"pred": image[:, ::-1]}, frozen=net)
  total, _ = losses.evaluate({"perceptual": config.losses.generator.perceptual,
                              "style": config.losses.generator.style}, inputs)
  assert np.isfinite(float(total)) and float(total) > 0


def test_vgg_weights_choice_per_variant():
  from inpaint_jax.config_lib import vgg_weights  # pylint: disable=g-import-not-at-top

  assert vgg_weights("demo", "") == (True, "random")
  assert vgg_weights("demo", "none") == (False, "")
  assert vgg_weights("tiny", "") == (False, "")
  assert vgg_weights("tiny", "/w/vgg.pth") == (True, "/w/vgg.pth")
  assert vgg_weights("official", "") == (True, "")  # training then asks for the file
  with pytest.raises(ValueError, match="demo and tiny"):
    vgg_weights("official", "none")
