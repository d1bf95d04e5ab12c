"""Loss terms against hand computations, and the recipe evaluator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import losses
from inpaint_jax.config_lib import term
from inpaint_jax.losses.adversarial import resize_mask_nearest
from inpaint_jax.registry import LOSSES


def _inputs(seed=0, n=2, h=8, w=8, **kw):
  rng = np.random.default_rng(seed)
  image = jnp.asarray(rng.uniform(size=(n, h, w, 3)), jnp.float32)
  pred = jnp.asarray(rng.uniform(size=(n, h, w, 3)), jnp.float32)
  mask = jnp.asarray(rng.uniform(size=(n, h, w, 1)) > 0.5, jnp.float32)
  kw.setdefault("fake_image", pred)
  return losses.LossInputs(image=image, mask=mask, outputs={"pred": pred}, **kw)


def test_masked_l1_weights_known_and_missing():
  x = _inputs()
  got = LOSSES.get("masked_l1")(x, weight_known=10.0, weight_missing=0.0)
  err = np.abs(np.asarray(x.pred) - np.asarray(x.image))
  m = np.asarray(x.mask)
  want = np.mean(err * (1 - m) * 10.0)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_resize_mask_nearest_uses_pytorch_floor_rule():
  mask = jnp.arange(8, dtype=jnp.float32).reshape(1, 8, 1, 1) * jnp.ones((1, 8, 8, 1))
  out = resize_mask_nearest(mask, 3, 3)
  # PyTorch picks source rows floor(i * 8 / 3) = 0, 2, 5 (not the centres 1, 4, 6).
  np.testing.assert_array_equal(np.asarray(out)[0, :, 0, 0], [0.0, 2.0, 5.0])


def test_nonsaturating_d_mask_as_fake_target():
  rng = np.random.default_rng(1)
  real = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  fake = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  x = _inputs(fake=(fake, []), real=(real, []))
  got, extra = LOSSES.get("nonsaturating_d")(x, mask_as_fake_target=True)
  sp = lambda v: np.log1p(np.exp(v))
  m = np.asarray(x.mask)[:, ::2, ::2]  # floor(i * 8 / 4) = 2i
  f = np.asarray(fake)
  want = np.mean(sp(-np.asarray(real))) + np.mean(m * sp(f) + (1 - m) * sp(-f))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  plain, _ = LOSSES.get("nonsaturating_d")(x, mask_as_fake_target=False)
  np.testing.assert_allclose(plain, np.mean(sp(-np.asarray(real))) + np.mean(sp(f)), rtol=1e-6)
  assert set(extra) == {"real_logit", "fake_logit"}


def test_nonsaturating_g_and_feature_matching():
  rng = np.random.default_rng(2)
  fake = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  feats_f = [jnp.asarray(rng.normal(size=(2, 4, 4, c)), jnp.float32) for c in (3, 5)]
  feats_r = [jnp.asarray(rng.normal(size=(2, 4, 4, c)), jnp.float32) for c in (3, 5)]
  x = _inputs(fake=(fake, feats_f), real=(fake, feats_r))
  np.testing.assert_allclose(LOSSES.get("nonsaturating_g")(x),
                             np.mean(np.log1p(np.exp(-np.asarray(fake)))), rtol=1e-6)
  want = np.mean([np.mean((np.asarray(a) - np.asarray(b)) ** 2)
                  for a, b in zip(feats_f, feats_r, strict=True)])
  np.testing.assert_allclose(LOSSES.get("feature_matching")(x), want, rtol=1e-6)


def test_r1_penalty_value_and_double_backprop():
  # D(x) = sum(w * x) per example: grad_x sum D = w for every example, R1 = sum(w^2).
  w = jnp.asarray(np.random.default_rng(3).normal(size=(8, 8, 3)), jnp.float32)

  def r1_of(w):
    disc = lambda x: (jnp.sum(w * x, axis=(1, 2, 3))[:, None, None, None], [])
    return LOSSES.get("r1_penalty")(_inputs(disc=disc))

  np.testing.assert_allclose(r1_of(w), np.sum(np.asarray(w) ** 2), rtol=1e-5)
  np.testing.assert_allclose(jax.grad(r1_of)(w), 2 * np.asarray(w), rtol=1e-5)


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
  w = jnp.ones((8, 8, 3)) / np.sqrt(8 * 8 * 3)
  disc = lambda x: (jnp.sum(w * x, axis=(1, 2, 3))[:, None, None, None], [])
  x = _inputs(disc=disc, rng=jax.random.PRNGKey(0))
  assert float(LOSSES.get("gradient_penalty")(x)) < 1e-8
  disc2 = lambda x: (2.0 * jnp.sum(w * x, axis=(1, 2, 3))[:, None, None, None], [])
  x2 = _inputs(disc=disc2, rng=jax.random.PRNGKey(0))
  np.testing.assert_allclose(LOSSES.get("gradient_penalty")(x2), 1.0, rtol=1e-4)


def test_wgan_terms():
  rng = np.random.default_rng(4)
  real = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  fake = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  x = _inputs(fake=(fake, []), real=(real, []))
  np.testing.assert_allclose(LOSSES.get("wgan_g")(x), -np.mean(np.asarray(fake)), rtol=1e-6)
  d, extra = LOSSES.get("wgan_d")(x)
  np.testing.assert_allclose(d, np.mean(np.asarray(fake)) - np.mean(np.asarray(real)),
                             rtol=1e-6)
  np.testing.assert_allclose(extra["wasserstein"], -d, rtol=1e-6)


def test_recipe_weights_labels_and_switched_off_terms():
  x = _inputs()
  recipe = {"a": term("l1", 2.0), "b": term("masked_l1", 0.5, weight_known=1.0,
                                              weight_missing=3.0),
            "off": term("nonsaturating_g", 0.0)}  # needs D outputs; skipped at weight 0
  total, metrics = losses.evaluate(recipe, x, prefix="g/")
  l1 = LOSSES.get("l1")(x)
  ml1 = LOSSES.get("masked_l1")(x, weight_known=1.0, weight_missing=3.0)
  np.testing.assert_allclose(total, 2.0 * l1 + 0.5 * ml1, rtol=1e-6)
  assert set(metrics) == {"g/a", "g/b", "g/total"}


def test_recipe_errors_name_the_term():
  x = _inputs()
  with pytest.raises(ValueError, match=r"losses\.\*\.bad\.fn.*unknown loss term 'nope'"):
    losses.evaluate({"bad": term("nope", 1.0)}, x)
  with pytest.raises(TypeError, match="loss term 'x' \\(l1\\): bad options"):
    losses.evaluate({"x": term("l1", 1.0, wieght=3)}, x)
