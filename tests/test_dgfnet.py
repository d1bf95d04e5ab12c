"""DGFNet generator: outputs, the texture input / target against a SciPy RTV, DPFM's
equations, the stream encoders and their switch, the ablations' structure, gradients into
every branch, the recipe's `target=`."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import losses
from inpaint_jax.config_lib import term
from inpaint_jax.models.dgfnet import network as dgfnet
from tests.test_rtv import reference_rtv

pytestmark = pytest.mark.usefixtures("fast_compile")

SIZE = 32
# The coarse branch is the tiny RFR-Net of configs/dgfnet.py:tiny.
TINY_COARSE = dict(name="rfr", rec_ksize=3, n_rec=1, ngf=4, tail_ch=4, layer_size=4)
TINY = dict(coarse=TINY_COARSE, tex_widths=(4, 8, 8, 8),
            fuse_widths=(4, 8, 8, 8), fuse_out_width=4, encoder_widths=(4, 5))


def _batch():
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:SIZE, :SIZE]
  base = np.where(xx > SIZE // 2, 0.7, 0.3)[None, ..., None] * np.ones((2, 1, 1, 3))
  image = np.clip(base + 0.1 * np.sign(np.sin(1.9 * xx + yy))[None, ..., None]
                  + 0.02 * rng.standard_normal((2, SIZE, SIZE, 3)), 0, 1)
  mask = np.zeros((2, SIZE, SIZE, 1))
  mask[0, 8:20, 6:18] = 1.0
  mask[1, 2:12, 14:30] = 1.0
  return jnp.asarray(image, jnp.float32), jnp.asarray(mask, jnp.float32)


def _init(model, *args):
  """Jitted init: eager init dispatches (and compiles) every small op on its own."""
  return jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), *args)


@pytest.fixture(scope="module")
def full():
  model = dgfnet.DGFNet(**TINY)
  image, mask = _batch()
  variables = _init(model, image, mask)

  def loss(params):
    out, _ = model.apply({**variables, "params": params}, image, mask, train=True,
                         mutable=["batch_stats"])
    return jnp.mean(out["pred"] ** 2), out

  # One compilation gives the train-mode outputs and the gradients.
  (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  return model, variables, image, mask, out, grads


def test_outputs(full):
  _, variables, image, _, out, _ = full
  assert set(out) == {"pred", "coarse", "texture", "texture_input", "texture_target"}
  for v in out.values():
    assert v.shape == image.shape and v.dtype == jnp.float32
    assert np.isfinite(np.asarray(v)).all()
  assert set(variables["params"]) == {"coarse_net", "texture_net", "encoder_c", "encoder_t",
                                      "dpfm_1", "dpfm_2", "dpfm_3", "dpfm_4", "up_3", "up_2",
                                      "up_1", "up_0", "head"}


def test_texture_input_and_target_against_a_scipy_rtv(full):
  """texture_input = (M - RTV(M, mask)) * known with M the masked image, and
  texture_target = image - RTV(image), RTV solved directly by SciPy in float64."""
  _, _, image, mask, out, _ = full
  image64, hole = np.asarray(image, np.float64), np.asarray(mask, np.float64)[..., 0]
  masked = image64 * (1.0 - hole[..., None])
  want_in = np.stack([(m - reference_rtv(m, hole=h)) * (1.0 - h[..., None])
                      for m, h in zip(masked, hole, strict=True)])
  want_target = np.stack([x - reference_rtv(x) for x in image64])
  err_in = float(np.max(np.abs(np.asarray(out["texture_input"]) - want_in)))
  err_target = float(np.max(np.abs(np.asarray(out["texture_target"]) - want_target)))
  print(f"\n[dgfnet texture vs SciPy RTV] input {err_in:.3g}, target {err_target:.3g}")
  # The CG stops at a relative residual of 1e-3 (test_rtv.py's bound).
  assert err_in <= 1e-3 and err_target <= 1e-3
  assert float(jnp.abs(out["texture_input"] * mask).max()) == 0.0
  # The RTV does something: the texture is neither the image nor zero.
  assert 1e-3 < float(np.abs(want_target).mean()) < 0.1
  assert float(np.max(np.abs(np.asarray(out["texture_target"]) - image64))) > 0.1


def test_eval_mode_has_no_target(full):
  model, variables, image, mask, *_ = full
  out = jax.eval_shape(lambda: model.apply(variables, image, mask, train=False))
  assert "texture_target" not in out and out["pred"].shape == image.shape


def _conv_s2(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST)


def _bn_train(x, p):
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))
  return (x - mean) / jnp.sqrt(var + 1e-5) * p["scale"] + p["bias"]


@pytest.mark.parametrize("gated", [True, False])
def test_dpfm_follows_the_equations(gated):
  rng = np.random.default_rng(1)
  f_c = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
  f_t = jnp.asarray(rng.standard_normal((2, 8, 8, 5)), jnp.float32)
  module = dgfnet.DPFM(6, gated=gated)
  variables = _init(module, f_c, f_t)
  # Give BN non-trivial affine parameters.
  p = jax.tree.map(lambda a: a + 0.1 * jnp.asarray(rng.standard_normal(a.shape), a.dtype),
                   variables["params"])
  (o_c, o_t), _ = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))(
      {**variables, "params": p}, f_c, f_t)
  y_c = jax.nn.leaky_relu(_conv_s2(f_c, p["conv_c"]["kernel"]), 0.2)
  y_t = jax.nn.leaky_relu(_conv_s2(f_t, p["conv_t"]["kernel"]), 0.2)
  if gated:
    w = jax.nn.sigmoid(_bn_train(_conv_s2(jnp.concatenate([f_c, f_t], -1),
                                          p["conv_w"]["kernel"]), p["bn_w"]))
    y_c, y_t = w[..., :6] * y_c, w[..., 6:] * y_t
  else:
    assert "conv_w" not in p
  np.testing.assert_allclose(o_c, _bn_train(y_c, p["bn_c"]), atol=2e-5)
  np.testing.assert_allclose(o_t, _bn_train(y_t, p["bn_t"]), atol=2e-5)
  assert o_c.shape == (2, 4, 4, 6)


def test_stream_encoders_and_their_switch():
  """Each stream is encoded (conv + BN + LReLU per width) before DPFM-1; the switch off
  gives the 3-channel composites to DPFM-1."""
  image, mask = _batch()
  shapes = jax.eval_shape(lambda: dgfnet.DGFNet(**TINY).init(jax.random.key(0), image, mask,
                                                             train=False))["params"]
  for stream in ("encoder_c", "encoder_t"):
    assert set(shapes[stream]) == {"layer_0", "layer_1"}
    assert shapes[stream]["layer_0"]["conv"]["kernel"].shape == (3, 3, 3, 4)
    assert shapes[stream]["layer_1"]["conv"]["kernel"].shape == (3, 3, 4, 5)
    assert set(shapes[stream]["layer_1"]["bn"]) == {"scale", "bias"}
  assert shapes["dpfm_1"]["conv_c"]["kernel"].shape == (3, 3, 5, 4)
  assert shapes["dpfm_1"]["conv_w"]["kernel"].shape == (3, 3, 10, 8)
  plain = jax.eval_shape(lambda: dgfnet.DGFNet(**TINY, feature_encoders=False).init(
      jax.random.key(0), image, mask, train=False))["params"]
  assert "encoder_c" not in plain and "encoder_t" not in plain
  assert plain["dpfm_1"]["conv_c"]["kernel"].shape == (3, 3, 3, 4)
  base = jax.eval_shape(lambda: dgfnet.DGFNet(**TINY, texture_branch=False).init(
      jax.random.key(0), image, mask, train=False))["params"]
  assert "encoder_c" in base and "encoder_t" not in base
  with pytest.raises(ValueError, match="generator.encoder_widths"):
    jax.eval_shape(lambda: dgfnet.DGFNet(**{**TINY, "encoder_widths": ()}).init(
        jax.random.key(0), image, mask, train=False))


def test_ablations():
  image, mask = _batch()
  concat = dgfnet.DGFNet(**TINY, fusion="concat")
  v = jax.eval_shape(lambda: concat.init(jax.random.key(0), image, mask, train=False))
  assert "conv_w" not in v["params"]["dpfm_1"] and "conv_t" in v["params"]["dpfm_1"]
  base = dgfnet.DGFNet(**TINY, texture_branch=False)
  variables = jax.eval_shape(lambda: base.init(jax.random.key(0), image, mask, train=False))
  assert "texture_net" not in variables["params"]
  assert set(variables["params"]["dpfm_4"]) == {"conv_c", "bn_c"}
  out = jax.eval_shape(lambda v: base.apply(v, image, mask, train=False), variables)
  assert set(out) == {"pred", "coarse"}


def test_texture_branch_size():
  """The default texture branch stays under 10 M parameters."""
  x = jnp.zeros((1, 32, 32, 4))
  shapes = jax.eval_shape(lambda: dgfnet.TextureBranch().init(jax.random.key(0), x,
                                                              train=False))
  n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))
  assert n == 8_708_995 and n <= 10_000_000


def test_gradients_reach_every_branch(full):
  grads = full[5]
  for name in ("coarse_net", "texture_net", "encoder_c", "encoder_t", "dpfm_1", "dpfm_4",
               "up_0", "head"):
    norm = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads[name]))))
    assert norm > 0.0, name


def test_bad_inputs():
  image, mask = _batch()
  model = dgfnet.DGFNet(**TINY)
  with pytest.raises(ValueError, match="multiples of 16"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), image[:, :24], mask[:, :24],
                                      train=False))
  with pytest.raises(ValueError, match="generator.fusion"):
    jax.eval_shape(lambda: dgfnet.DGFNet(**{**TINY, "fusion": "sum"}).init(
        jax.random.key(0), image, mask, train=False))


def test_recipe_target_reads_an_output(full):
  _, _, image, mask, out, _ = full
  inputs = losses.LossInputs(image=image, mask=mask, outputs=out)
  recipe = {"t": term("hole_l1", 2.0, output="texture", target="texture_target")}
  _, metrics = losses.evaluate(recipe, inputs)
  expected = 2.0 * jnp.mean(jnp.abs(out["texture"] - out["texture_target"]) * mask)
  np.testing.assert_allclose(metrics["t"], expected, rtol=1e-6)
  # No gradient flows into the target.
  g = jax.grad(lambda t: losses.evaluate(recipe, losses.LossInputs(
      image=image, mask=mask, outputs={**out, "texture_target": t}))[0])(out["texture_target"])
  assert float(jnp.abs(g).max()) == 0.0
  with pytest.raises(ValueError, match="returns no 'nope'"):
    losses.evaluate({"t": term("l1", 1.0, target="nope")}, inputs)
  small = {**out, "small": out["pred"][:, ::2, ::2]}
  with pytest.raises(ValueError, match="has shape"):
    losses.evaluate({"t": term("l1", 1.0, target="small")},
                    losses.LossInputs(image=image, mask=mask, outputs=small))
