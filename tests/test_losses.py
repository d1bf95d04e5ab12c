"""Loss terms against hand computations, and the recipe evaluator."""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import losses
from inpaint_jax.backbones import frozen, vgg
from inpaint_jax.config_lib import term
from inpaint_jax.losses import perceptual, recipe
from inpaint_jax.losses.adversarial import resize_mask_nearest
from inpaint_jax.models import morphology
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


# ---------------------------------------------------------------------------
# Hand-made values and gradients for every term. Tiny inputs: (N, H, W, C).

def _x(pred, image, mask=None, **kw):
  pred, image = jnp.asarray(pred, jnp.float32), jnp.asarray(image, jnp.float32)
  if mask is None:
    mask = jnp.zeros(image.shape[:3] + (1,), jnp.float32)
  outputs = kw.pop("outputs", {})
  return losses.LossInputs(image=image, mask=jnp.asarray(mask, jnp.float32),
                           outputs={"pred": pred, **outputs}, **kw)


def _grad(name, x, **options):
  """d term / d pred, and the value."""
  fn = LOSSES.get(name)

  def f(pred):
    out = fn(dataclasses.replace(x, outputs={**x.outputs, "pred": pred}), **options)
    return out[0] if isinstance(out, tuple) else out

  value, g = jax.jit(jax.value_and_grad(f))(x.pred)
  assert np.all(np.isfinite(np.asarray(g))), name
  return float(value), np.asarray(g)


HOLE = np.array([[[[1.0], [0.0]], [[0.0], [1.0]]]])  # (1, 2, 2, 1): holes on the diagonal


def test_masked_l1_hole_weight_zero_gives_no_gradient_from_the_hole():
  x = _inputs()
  _, g = _grad("masked_l1", x, weight_known=10.0, weight_missing=0.0)
  m = np.asarray(x.mask)[..., 0] > 0
  assert np.all(g[m] == 0.0) and np.all(np.abs(g[~m]) > 0)


def test_hole_and_valid_l1():
  pred = np.array([[[[1.0], [2.0]], [[3.0], [4.0]]]])
  x = _x(pred, np.zeros_like(pred), HOLE)
  v, g = _grad("hole_l1", x)
  assert v == pytest.approx((1 + 4) / 4)          # mean over all 4 elements, holes 1 and 4
  np.testing.assert_array_equal(g[..., 0], [[[0.25, 0.0], [0.0, 0.25]]])
  v, g = _grad("valid_l1", x)
  assert v == pytest.approx((2 + 3) / 4)
  np.testing.assert_array_equal(g[..., 0], [[[0.0, 0.25], [0.25, 0.0]]])
  np.testing.assert_allclose(LOSSES.get("l1")(x), 10 / 4)


def test_charbonnier():
  pred = np.array([[[[3.0], [0.0]], [[0.0], [0.0]]]])
  x = _x(pred, np.zeros_like(pred))
  v, g = _grad("charbonnier", x, eps=1e-3)
  assert v == pytest.approx((np.sqrt(9 + 1e-6) + 3 * 1e-3) / 4, rel=1e-6)
  assert g[0, 0, 0, 0] == pytest.approx(3 / np.sqrt(9 + 1e-6) / 4, rel=1e-5)
  assert np.all(g.reshape(-1)[1:] == 0.0)  # smooth at d = 0: zero, finite gradient


def test_charbonnier_region_hole_masks_the_gradient():
  pred = np.array([[[[3.0], [2.0]], [[1.0], [5.0]]]])
  x = _x(pred, np.zeros_like(pred), HOLE)
  _, g = _grad("charbonnier", x, region="hole")
  np.testing.assert_array_equal(g[..., 0] != 0, HOLE[..., 0] > 0)


TV_X = np.array([[[[0.0], [1.0]], [[2.0], [4.0]]]])


def test_total_variation_rfr_form():
  x = _x(TV_X, np.zeros_like(TV_X))
  v, g = _grad("total_variation", x, form="rfr", region="all")
  assert v == pytest.approx((1 + 2) / 2 + (2 + 3) / 2)  # horizontal |1|,|2|; vertical |2|,|3|
  # d/dx00 = -1/2 (horizontal) - 1/2 (vertical)
  assert g[0, 0, 0, 0] == pytest.approx(-1.0)
  # region=hole: x * mask = [[0, 0], [0, 4]].
  v, _ = _grad("total_variation", _x(TV_X, np.zeros_like(TV_X), HOLE), form="rfr",
               region="hole")
  assert v == pytest.approx(4 / 2 + 4 / 2)


def test_total_variation_dfnet_form_and_target_quirk():
  x = _x(TV_X, np.zeros_like(TV_X))
  # D(x)[i, j] = x[i-1, j] + x[i, j-1] - 2 x[i, j]: [[0, -2], [-4, -5]].
  v, g = _grad("total_variation", x, form="dfnet", region="all")
  assert v == pytest.approx(11 / 4)
  assert np.all(g != 0)
  # The official DFNet evaluates TV on the targets: a constant, no gradient.
  xt = _x(np.zeros_like(TV_X), TV_X)
  v, g = _grad("total_variation", xt, form="dfnet", region="all", of="target")
  assert v == pytest.approx(11 / 4) and np.all(g == 0.0)


def test_multiscale_l1_and_bilinear_targets():
  image = np.full((1, 4, 4, 3), 0.5)
  scales = [jnp.ones((1, 4, 4, 3)), jnp.zeros((1, 2, 2, 3))]
  x = _x(scales[0], image, outputs={"scales": scales})
  v, extra = LOSSES.get("multiscale_l1")(x)
  assert float(v) == pytest.approx(0.5) and set(extra) == {"s0", "s1"}
  v1, _ = LOSSES.get("multiscale_l1")(x, scales=[1])
  assert float(v1) == pytest.approx(0.5)
  g = jax.grad(lambda s: LOSSES.get("multiscale_l1")(
      dataclasses.replace(x, outputs={"pred": s[0], "scales": s}))[0])(scales)
  assert float(jnp.max(jnp.abs(g[1]))) == pytest.approx(0.5 / 12)  # mean of 2 scales, 12 els


def test_resize_bilinear_is_pytorch_no_antialias():
  # A x1/2 bilinear resize with half-pixel centres and no anti-aliasing averages 2x2 blocks
  # (PyTorch F.interpolate(..., 'bilinear', align_corners=False)).
  img = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1)
  out = recipe.resize_bilinear(img, 2, 2)
  np.testing.assert_allclose(np.asarray(out)[0, ..., 0], [[2.5, 4.5], [10.5, 12.5]])


def test_output_option_selects_and_resizes():
  image = jnp.arange(16, dtype=jnp.float32).reshape(1, 4, 4, 1) * jnp.ones((1, 1, 1, 3))
  mask = jnp.zeros((1, 4, 4, 1)).at[:, :2, :2].set(1.0)
  pred = jnp.zeros((1, 4, 4, 3))
  small = jnp.zeros((1, 2, 2, 3))
  x = losses.LossInputs(image=image, mask=mask,
                        outputs={"pred": pred, "coarse": pred + 1.0, "scales": [pred, small]})
  _, m = losses.evaluate({"a": term("l1", 1.0, output="coarse"),
                          "b": term("l1", 1.0, output="scales[1]"),
                          "c": term("hole_l1", 1.0, output="scales[1]"),
                          "d": term("l1", 1.0, output="composite"),
                          "e": term("l1", 1.0, output="scales[-1]")}, x)
  assert float(m["a"]) == pytest.approx(float(jnp.mean(jnp.abs(1.0 - image))))
  assert float(m["b"]) == pytest.approx(np.mean([2.5, 4.5, 10.5, 12.5]))
  assert float(m["c"]) == pytest.approx(2.5 / 4)  # the resized mask is 1 on the top-left
  assert float(m["e"]) == float(m["b"])
  composite = mask * pred + (1 - mask) * image
  assert float(m["d"]) == pytest.approx(float(jnp.mean(jnp.abs(composite - image))))
  for bad, msg in [("texture", "returns no 'texture'.*coarse, pred, scales"),
                   ("scales", "is a list of 2"), ("scales[2]", "has 2 items"),
                   ("coarse[0]", "is not a list"), ("x.y", "is not `name`")]:
    with pytest.raises(ValueError, match=msg):
      losses.evaluate({"t": term("l1", 1.0, output=bad)}, x)


def test_clamp_option():
  x = _x(np.full((1, 2, 2, 3), 3.0), np.zeros((1, 2, 2, 3)))
  _, m = losses.evaluate({"c": term("l1", 2.0, clamp=1.0), "u": term("l1", 2.0, clamp=5.0)}, x)
  assert float(m["c"]) == 2.0 and float(m["u"]) == 6.0
  g = jax.grad(lambda p: losses.evaluate({"c": term("l1", 1.0, clamp=1.0)},
                                         dataclasses.replace(x, outputs={"pred": p}))[0])(x.pred)
  assert float(jnp.max(jnp.abs(g))) == 0.0  # like torch.clamp


def _ffl_reference(pred, target, alpha=1.0):
  """The official focal frequency loss formula in numpy (NCHW, patch_factor 1)."""
  f = np.fft.fft2(pred.transpose(0, 3, 1, 2), norm="ortho")
  t = np.fft.fft2(target.transpose(0, 3, 1, 2), norm="ortho")
  d2 = (f.real - t.real) ** 2 + (f.imag - t.imag) ** 2
  w = np.sqrt(d2) ** alpha
  w = w / w.max(axis=(-2, -1), keepdims=True)
  w[np.isnan(w)] = 0.0
  return np.mean(np.clip(w, 0, 1) * d2)


def test_focal_frequency_known_value_and_reference():
  # A delta against zeros: every orthonormal DFT coefficient is 1/4, so |F - T|^2 = 1/16
  # everywhere and the normalised weight is 1.
  pred = np.zeros((1, 4, 4, 1))
  pred[0, 0, 0, 0] = 1.0
  x = _x(pred, np.zeros_like(pred))
  v, g = _grad("focal_frequency", x)
  assert v == pytest.approx(1 / 16, rel=1e-6)
  rng = np.random.default_rng(0)
  p, t = rng.uniform(size=(2, 8, 8, 3)), rng.uniform(size=(2, 8, 8, 3))
  np.testing.assert_allclose(LOSSES.get("focal_frequency")(_x(p, t)), _ffl_reference(p, t),
                             rtol=1e-5)
  np.testing.assert_allclose(LOSSES.get("focal_frequency")(_x(p, t), alpha=2.0),
                             _ffl_reference(p, t, 2.0), rtol=1e-5)
  for opts in ({"patch_factor": 2}, {"ave_spectrum": True}, {"log_matrix": True},
               {"batch_matrix": True}):
    _grad("focal_frequency", _x(p, t), **opts)
  # Identical images: 0 / 0 in the weight is taken as 0, gradient zero and finite.
  v, g = _grad("focal_frequency", _x(t, t))
  assert v == 0.0 and np.all(g == 0.0)


def test_log_spectrum_l1():
  # A constant c on 2x2: the ortho rfft2 has DC 2c and zeros elsewhere (2 x 2 coefficients).
  x = _x(np.full((1, 2, 2, 1), 0.5), np.zeros((1, 2, 2, 1)))
  v, _ = _grad("log_spectrum_l1", x)
  assert v == pytest.approx(np.log1p(1.0) / 4, rel=1e-6)


REAL = np.array([2.0, 0.5]).reshape(1, 1, 2, 1)
FAKE = np.array([-2.0, 0.5]).reshape(1, 1, 2, 1)


def _d_inputs(real=REAL, fake=FAKE, real_feats=(), fake_feats=()):
  return _inputs(real=(jnp.asarray(real, jnp.float32), list(real_feats)),
                 fake=(jnp.asarray(fake, jnp.float32), list(fake_feats)))


def _logit_grads(name, x, **options):
  def f(real, fake):
    out = LOSSES.get(name)(dataclasses.replace(x, real=(real, x.real[1]), fake=(fake, x.fake[1])),
                           **options)
    return out[0] if isinstance(out, tuple) else out
  value, (gr, gf) = jax.value_and_grad(f, argnums=(0, 1))(x.real[0], x.fake[0])
  return float(value), np.asarray(gr).ravel(), np.asarray(gf).ravel()


def test_hinge():
  x = _d_inputs()
  v, gr, gf = _logit_grads("hinge_d", x)
  assert v == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
  np.testing.assert_allclose(gr, [0.0, -0.5])   # margin met at 2: no gradient
  np.testing.assert_allclose(gf, [0.0, 0.5])    # margin met at -2
  v, _, gf = _logit_grads("hinge_g", x)
  assert v == pytest.approx(0.75) and np.allclose(gf, [-0.5, -0.5])
  # DGFNet's Eq. (9), mean relu(1 - D(fake)): equal gradients below the margin ...
  v, _, gf = _logit_grads("hinge_g", x, form="relu")
  assert v == pytest.approx((3.0 + 0.5) / 2) and np.allclose(gf, [-0.5, -0.5])
  # ... none past it, where the mean form still pushes.
  past = _d_inputs(fake=np.reshape([2.0, 0.5], np.shape(FAKE)))
  v, _, gf = _logit_grads("hinge_g", past, form="relu")
  assert v == pytest.approx(0.25) and np.allclose(gf, [0.0, -0.5])
  v, _, gf = _logit_grads("hinge_g", past)
  assert v == pytest.approx(-1.25) and np.allclose(gf, [-0.5, -0.5])
  with pytest.raises(ValueError, match="hinge_g: form"):
    LOSSES.get("hinge_g")(x, form="square")


def test_lsgan():
  x = _d_inputs()
  v, _, gf = _logit_grads("lsgan_g", x)
  assert v == pytest.approx((9 + 0.25) / 2) and np.allclose(gf, [-3.0, -0.5])
  v, gr, gf = _logit_grads("lsgan_d", x)
  assert v == pytest.approx(0.5 * ((1 + 0.25) / 2 + (4 + 0.25) / 2))
  np.testing.assert_allclose(gr, [0.5, -0.25])
  v, _, gf = _logit_grads("lsgan_d", x, clamp_each=2.0)
  assert v == pytest.approx(0.5 * (0.625 + 2.0)) and np.all(gf == 0.0)  # fake half clamped


def test_bce():
  x = _d_inputs()
  sp = lambda a: np.log1p(np.exp(a))
  sig = lambda a: 1 / (1 + np.exp(-a))
  v, _, gf = _logit_grads("bce_g", x)
  assert v == pytest.approx(np.mean(sp(-FAKE)))
  np.testing.assert_allclose(gf, -(1 - sig(FAKE.ravel())) / 2, rtol=1e-6)
  np.testing.assert_allclose(LOSSES.get("bce_g")(x), LOSSES.get("nonsaturating_g")(x))
  v, gr, _ = _logit_grads("bce_d", x)
  assert v == pytest.approx(np.mean(sp(-REAL)) + np.mean(sp(FAKE)), rel=1e-6)
  v, _, _ = _logit_grads("bce_d", x, real_label=0.9)
  want = np.mean(0.9 * sp(-REAL) + 0.1 * sp(REAL)) + np.mean(sp(FAKE))
  assert v == pytest.approx(want, rel=1e-6)


def test_feature_matching_l1_layers_and_detached_real():
  f = [jnp.ones((1, 2, 2, 1)), jnp.full((1, 1, 1, 2), 3.0)]
  r = [jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 1, 1, 2))]
  x = _d_inputs(real_feats=r, fake_feats=f)
  assert float(LOSSES.get("feature_matching")(x)) == pytest.approx((1 + 9) / 2)
  assert float(LOSSES.get("feature_matching")(x, distance="l1")) == pytest.approx((1 + 3) / 2)
  assert float(LOSSES.get("feature_matching")(x, layers=[1])) == pytest.approx(9)
  gf, gr = jax.grad(lambda f, r: LOSSES.get("feature_matching")(
      dataclasses.replace(x, fake=(x.fake[0], f), real=(x.real[0], r))), argnums=(0, 1))(f, r)
  assert float(jnp.max(jnp.abs(gr[1]))) == 0.0 and float(gf[1][0, 0, 0, 0]) == pytest.approx(1.5)


# VGG terms on a hand-made VGG-16: the first two convs copy RGB into channels 0..2 (centre
# tap 1, no bias) and zero the other 61, so relu1_2 = relu(x) on 3 of 64 channels.

def _identity_vgg(depth=16):
  params = {}
  c_in = 3
  for index, c_out in zip(vgg.conv_indices(depth), [c for b in vgg.CONFIGS[depth] for c in b],
                          strict=True):
    k = np.zeros((3, 3, c_in, c_out), np.float32)
    for c in range(3):
      k[1, 1, c, c] = 1.0
    params[f"features_{index}"] = {"kernel": k, "bias": np.zeros(c_out, np.float32)}
    c_in = c_out
  return frozen.FrozenNet(vgg.VGG(depth, ("relu1_2",)), {"params": params})


def test_vgg_perceptual_known_values():
  net = {"vgg16": _identity_vgg()}
  x = _x(np.ones((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), HOLE, frozen=net)
  opts = dict(layers=("relu1_2",))
  v, extra = LOSSES.get("vgg_perceptual")(x, **opts)
  assert float(v) == pytest.approx(3 / 64) and set(extra) == {"relu1_2"}
  assert float(LOSSES.get("vgg_perceptual")(x, distance="mse", **opts)[0]) == pytest.approx(3 / 64)
  assert float(LOSSES.get("vgg_perceptual")(x, region="known", **opts)[0]) == pytest.approx(
      3 / 64 / 2)
  assert float(LOSSES.get("vgg_perceptual")(x, normalize_features=True, **opts)[0]) == (
      pytest.approx(np.sqrt(3) / 64, rel=1e-6))
  two = _x(np.ones((2, 2, 2, 3)), np.zeros((2, 2, 2, 3)), frozen=net)
  assert float(LOSSES.get("vgg_perceptual")(two, batch_reduction="sum", **opts)[0]) == (
      pytest.approx(2 * 3 / 64))
  # Two layers, summed or averaged; pool1 of a 2x2 image is one pixel.
  v, extra = LOSSES.get("vgg_perceptual")(x, layers=("relu1_2", "pool1"))
  assert float(v) == pytest.approx(2 * 3 / 64) and set(extra) == {"relu1_2", "pool1"}
  v, _ = LOSSES.get("vgg_perceptual")(x, layers=("relu1_2", "pool1"), layer_reduction="mean")
  assert float(v) == pytest.approx(3 / 64)
  # Gradient: zero from the holes with region=known, finite; zero when pred == image.
  _, g = _grad("vgg_perceptual", x, region="known", **opts)
  assert np.all(g[0][HOLE[0, ..., 0] > 0] == 0.0) and np.all(g[0][HOLE[0, ..., 0] == 0] != 0)
  _, g = _grad("vgg_perceptual", _x(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3)), frozen=net),
               **opts)
  assert np.all(g == 0.0)


def test_vgg_pooling_and_imagenet_normalisation():
  net = {"vgg16": _identity_vgg()}
  pred = np.zeros((1, 2, 2, 3))
  pred[0, :, 1] = 1.0   # columns 0, 1 = 0, 1: max pool 1, average pool 0.5
  x = _x(pred, np.zeros_like(pred), frozen=net)
  mx = LOSSES.get("vgg_perceptual")(x, layers=("pool1",))[0]
  av = LOSSES.get("vgg_perceptual")(x, layers=("pool1",), pooling="avg")[0]
  assert float(mx) == pytest.approx(3 / 64) and float(av) == pytest.approx(1.5 / 64)
  # ImageNet normalisation: relu((x - mean) / std) differs between 0 and 1 inputs.
  xn = _x(np.ones((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), frozen=net)
  got = LOSSES.get("vgg_perceptual")(xn, layers=("relu1_2",), imagenet_normalize=True)[0]
  mean, std = np.array(perceptual.IMAGENET_MEAN), np.array(perceptual.IMAGENET_STD)
  assert float(got) == pytest.approx(np.sum((1 - mean) / std) / 64, rel=1e-6)


def test_gram_style_known_value():
  net = {"vgg16": _identity_vgg()}
  x = _x(np.ones((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), frozen=net)
  # G = F^T F / (C H W) = 4 / (64 * 4) on the 3 x 3 RGB block, mean over 64 x 64 entries.
  v, extra = LOSSES.get("gram_style")(x, layers=("relu1_2",))
  assert float(v) == pytest.approx(9 / 64 / 4096, rel=1e-6) and set(extra) == {"relu1_2"}
  _, g = _grad("gram_style", x, layers=("relu1_2",))
  assert np.all(g != 0)
  _, g = _grad("gram_style", _x(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3)), frozen=net),
               layers=("relu1_2",))
  assert np.all(g == 0.0)


def test_frozen_backbone_missing_names_the_config_group():
  with pytest.raises(ValueError, match=r"c\.frozen\.resnet_pl"):
    LOSSES.get("resnet_pl")(_inputs())
  with pytest.raises(ValueError, match=r"c\.frozen\.vgg19"):
    LOSSES.get("vgg_perceptual")(_inputs(), backbone="vgg19")


# ---------------------------------------------------------------------------
# Recipes of other families against values computed by their official loss code (PyTorch):
# `tests/data/golden_losses_small.npz` holds DFNet's results, VGG-16 (random, sign-coded
# weights up to pool3) and loss values, and DCF's outputs, discriminator logits and values.

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden_losses_small.npz"


def _nhwc(a):
  return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def test_dfnet_recipe_matches_official_values():
  z = np.load(GOLDEN)
  state = {}
  c_in = 3
  for i, c_out in zip(vgg.conv_indices(16), [c for b in vgg.CONFIGS[16] for c in b],
                      strict=True):
    key = f"dfnet/vgg16/features.{i}"
    if f"{key}.bias" in z:
      state[f"features.{i}.weight"] = (z[f"{key}.weight_sign"].astype(np.float32) *
                                       z[f"{key}.weight_scale"])
      state[f"features.{i}.bias"] = z[f"{key}.bias"]
    else:  # beyond pool3: never run
      state[f"features.{i}.weight"] = np.zeros((c_out, c_in, 3, 3), np.float32)
      state[f"features.{i}.bias"] = np.zeros(c_out, np.float32)
    c_in = c_out
  net = frozen.FrozenNet(vgg.VGG(16, ("pool3",)), {"params": vgg.params_from_torch(state, 16)})
  image = _nhwc(z["dfnet/io/image"])
  hole = 1.0 - _nhwc(z["dfnet/io/mask"])   # DFNet's mask is 1 = known
  results = [_nhwc(z[f"dfnet/eval/result_{s}"]) for s in range(4)]
  # DFNet: 6 * multi-scale L1 over all results; perceptual 0.1, style 240 and TV 0.1 averaged
  # over the 3 finest results (so each scale weighs 1/3); TV on the known region of the
  # targets (the official quirk).
  recipe_ = {"rec": term("multiscale_l1", 6.0)}
  for s in range(3):
    out = f"scales[{s}]"
    recipe_[f"perc{s}"] = term("vgg_perceptual", 0.1 / 3, output=out, backbone="vgg16")
    recipe_[f"style{s}"] = term("gram_style", 240 / 3, output=out, backbone="vgg16")
    recipe_[f"tv{s}"] = term("total_variation", 0.1 / 3, output=out, form="dfnet",
                             region="known", of="target")

  def total(results, image, hole, params):
    x = losses.LossInputs(image=image, mask=hole, outputs={"pred": results[0],
                                                           "scales": results},
                          frozen={"vgg16": frozen.FrozenNet(net.module, params)})
    return losses.evaluate(recipe_, x)

  # Everything an argument: XLA would constant-fold the target's VGG pass otherwise.
  (tot, m), grads = jax.jit(jax.value_and_grad(total, has_aux=True))(results, image, hole,
                                                                     net.variables)
  sums = {k: sum(float(m[f"{k}{s}"]) for s in range(3)) for k in ("perc", "style", "tv")}
  np.testing.assert_allclose(float(m["rec"]), z["dfnet/loss/reconstruction"], rtol=1e-5)
  np.testing.assert_allclose(sums["perc"], z["dfnet/loss/perceptual"], rtol=1e-5)
  np.testing.assert_allclose(sums["style"], z["dfnet/loss/style"], rtol=1e-5)
  np.testing.assert_allclose(sums["tv"], z["dfnet/loss/tv"], rtol=1e-5)
  np.testing.assert_allclose(float(tot), z["dfnet/loss/total"], rtol=1e-5)
  # Gradients w.r.t. each result. At the 3 coarser scales they agree to 2e-4 of the largest
  # entry. At the finest, the L1 of Gram matrices meets ~7 % near-ties (both Grams ~0 in
  # dead channels), where float rounding picks the sign: agreement is then 1 % in L2 norm.
  for s in range(4):
    want = np.transpose(z[f"dfnet/loss/grad_result_{s}"], (0, 2, 3, 1))
    got = np.asarray(grads[s])
    if s == 0:
      assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-2
    else:
      np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max())
  # The "fixed" TV, on the results.
  x = losses.LossInputs(image=image, mask=hole, outputs={"pred": results[0], "scales": results})
  fixed = sum(float(losses.evaluate({"tv": term("total_variation", 0.1 / 3, output=f"scales[{s}]",
                                                 form="dfnet", region="known")}, x)[1]["tv"])
              for s in range(3))
  np.testing.assert_allclose(fixed, z["dfnet/loss/tv_on_results"], rtol=1e-5)


def test_dcf_terms_match_official_values():
  z = np.load(GOLDEN)
  x = losses.LossInputs(
      image=_nhwc(z["dcf/io/image"]), mask=_nhwc(z["dcf/io/mask"]),   # DCF: 1 = hole
      outputs={"pred": _nhwc(z["dcf/eval/output"]),
               "stages": [_nhwc(z["dcf/eval/stage_outputs/0"])]},
      fake=(_nhwc(z["dcf/disc/eval_fake"]), []), real=(_nhwc(z["dcf/disc/eval_real"]), []))
  recipe_ = {"charbonnier": term("charbonnier", 1.0, eps=1e-3),
             "pixel": term("hole_l1", 1.0),
             "freq": term("log_spectrum_l1", 1.0),
             "stage0": term("charbonnier", 1.0, output="stages[0]"),
             "adv_g": term("lsgan_g", 1.0, clamp=2.0),
             "boundary": term("boundary_gradient", 1.0, clamp=5.0),
             "boundary_raw": term("boundary_gradient", 1.0),
             "smooth": term("smooth_transition", 1.0),
             "color": term("color_consistency", 1.0),
             "adv_d": term("lsgan_d", 1.0, clamp_each=2.0)}
  _, m = losses.evaluate(recipe_, x)
  for label, key in [("charbonnier", "charbonnier"), ("pixel", "pixel_fft_spatial"),
                     ("freq", "pixel_fft_freq_unclamped"), ("stage0", "stage0_charbonnier"),
                     ("adv_g", "adv_g"), ("adv_d", "d_total"), ("adv_d/real", "d_real"),
                     ("boundary", "boundary"), ("boundary_raw", "boundary_unclamped"),
                     ("smooth", "smooth_transition_unclamped"),
                     ("color", "color_consistency_unclamped"),
                     ("adv_d/fake", "d_fake")]:
    np.testing.assert_allclose(float(m[label]), z[f"dcf/loss/{key}"], rtol=2e-6, err_msg=label)


def test_every_registered_term_is_tested_here_or_in_test_backbones():
  tested = {"masked_l1", "l1", "hole_l1", "valid_l1", "charbonnier", "total_variation",
            "multiscale_l1", "focal_frequency", "log_spectrum_l1", "nonsaturating_g",
            "nonsaturating_d", "r1_penalty", "feature_matching", "wgan_g", "wgan_d",
            "gradient_penalty", "hinge_g", "hinge_d", "lsgan_g", "lsgan_d", "bce_g", "bce_d",
            "vgg_perceptual", "gram_style", "resnet_pl", "boundary_gradient",
            "smooth_transition", "color_consistency"}
  # Terms whose names start with "test_" are registered by other test modules.
  assert {n for n in LOSSES.names() if not n.startswith("test_")} == tested


# DCF's ring terms on a 7x7 image with one hole pixel in the centre: with k = 3 the dilated
# mask is the 3x3 block around it and the eroded mask is empty. 3x3 filters on the ring reach
# rows and columns 1..5, so the outermost ones get no gradient.
CENTRE = np.zeros((1, 7, 7, 1))
CENTRE[0, 3, 3, 0] = 1.0
RING3 = np.zeros((7, 7), bool)
RING3[2:5, 2:5] = True


def _outer_zero(g):
  return (np.all(g[0, 0] == 0) and np.all(g[0, -1] == 0) and np.all(g[0, :, 0] == 0)
          and np.all(g[0, :, -1] == 0))


def test_dilate_erode_ignore_the_border():
  d = np.asarray(morphology.dilate(jnp.asarray(CENTRE), 3))[0, ..., 0]
  np.testing.assert_array_equal(d, RING3.astype(float))
  assert float(jnp.max(morphology.erode(jnp.asarray(CENTRE), 3))) == 0.0
  full = jnp.ones((1, 3, 3, 1))   # the border does not erode an all-hole mask
  np.testing.assert_array_equal(np.asarray(morphology.erode(full, 3)), np.ones((1, 3, 3, 1)))


def test_boundary_gradient_known_value():
  image = np.zeros((1, 7, 7, 3))
  pred = image.copy()
  pred[0, 3, 3] = 1.0   # luminance difference 1 at the centre
  v, g = _grad("boundary_gradient", _x(pred, image, CENTRE), kernel_size=3)
  # Sobel of a delta: |gx| = 1, 2, 1 in the columns beside it (8 in all, centre 0), gy alike;
  # ring weight exp(-3) on the 8 ring pixels, 1 at the centre.
  e = np.exp(-3.0)
  assert v == pytest.approx(16 * e / (8 * e + 1), rel=1e-5)
  assert _outer_zero(g) and np.all(g[0, 3, 1:6] != 0)
  v, g = _grad("boundary_gradient", _x(image, image, CENTRE), kernel_size=3)
  assert v == 0.0 and np.all(g == 0.0)


def test_smooth_transition_known_value():
  pred, image = np.ones((1, 7, 7, 1)), np.zeros((1, 7, 7, 1))
  # A very wide Gaussian on 3x3 is the box filter: the local mean of ones is 1 on the ring
  # (dilate - mask: 8 pixels, all with their 9 neighbours inside the image).
  v, g = _grad("smooth_transition", _x(pred, image, CENTRE), kernel_size=3, sigma=1e6,
               var_weight=0.0)
  assert v == pytest.approx(8 / 49, rel=1e-5)
  assert _outer_zero(g) and np.all(g[0, 1:6, 1:6] != 0)
  _, g = _grad("smooth_transition", _x(image, image, CENTRE), kernel_size=3)
  assert np.all(g == 0.0)


def test_color_consistency_known_value():
  pred, image = np.ones((1, 7, 7, 2)), np.zeros((1, 7, 7, 2))
  # Ring = the 3x3 block: mean 1 vs 0 (MSE 1); both stds sqrt(1e-8).
  v, g = _grad("color_consistency", _x(pred, image, CENTRE), kernel_size=3)
  assert v == pytest.approx(1.0, rel=1e-6)
  np.testing.assert_array_equal(np.any(g[0] != 0, axis=-1), RING3)
