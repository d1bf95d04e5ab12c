"""DPNet family: parameter counts, ablation switches, masks per level, PAM, discriminator."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import summary
from inpaint_jax.inference import engine
from inpaint_jax.models import api as adapters
from inpaint_jax.models.dpnet.network import DPNet, DPNetPatchDiscriminator, patch_probability
from inpaint_jax.models.pyconv import PyConv, param_count, pyramid
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

dpnet_config = helpers.config_module("dpnet")

SMALL = dict(widths=(16, 64, 64, 64))  # 32 px, PAM at 4 x 4 and 8 x 8


def _n(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _inputs(n=2, s=32):
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.random((n, s, s, 3)), jnp.float32)
  mask = jnp.zeros((n, s, s, 1)).at[0, 8:24, 8:20].set(1.0).at[1, 0:12, 16:32].set(1.0)
  return image, mask


@functools.cache
def _build(**options):
  """(module, variables, eval pred, intermediates) from one jitted `init_with_output`."""
  g = DPNet(**{**SMALL, **options})
  image, mask = _inputs()
  out, variables = jax.jit(functools.partial(g.init_with_output, train=False, mutable=True))(
      jax.random.PRNGKey(0), image, mask)
  variables = dict(variables)
  inter = variables.pop("intermediates")
  return g, variables, out["pred"], inter


def _init(**options):
  return _build(**options)[:2]


def _run(**options):
  return _build(**options)[2:]


def _published_counts(**options):
  g = DPNet(**options)
  x, m = jnp.zeros((1, 256, 256, 3)), jnp.zeros((1, 256, 256, 1))
  return _n(jax.eval_shape(functools.partial(g.init, train=False), jax.random.PRNGKey(0),
                           x, m)["params"])


def test_published_counts_follow_the_formulas():
  widths = (64, 128, 256, 512, 512, 512, 512)
  # encoder: the 7x7 stem with bias, PyConv levels (no bias) + 4 region-norm vectors each
  enc = 7 * 7 * 4 * 64 + 64
  for i in range(1, 7):
    kernels, groups, splits = pyramid(max(1, 5 - i), widths[i])
    enc += param_count(widths[i - 1], kernels, groups, splits) + 4 * widths[i]
  dec = sum(9 * (widths[lv + 1] + widths[lv]) * widths[lv] + 4 * widths[lv] for lv in range(6))
  out = 9 * (64 + 4) * 3 + 3
  pam = 2 * 2  # two scales per PAM level
  assert _published_counts() == enc + dec + out + pam == 24_867_059
  assert _published_counts(pam=False) == 24_867_059 - 4
  assert _published_counts(pyconv=False) == 25_136_499  # dense 3x3 convs are larger
  # BatchNorm has 2 vectors per layer where region norm has 4
  assert _published_counts(dynamic_norm=False, static_norm="batch") == (
      24_867_059 - 2 * (sum(widths[1:]) + sum(widths[:6])))


def test_summary_prints_both_counts(capsys):
  counts = summary.summary(dpnet_config.get_config("default"))
  assert counts == {"generator_params": 24_867_059, "discriminator_params": 2_765_761}
  out = capsys.readouterr().out
  assert "generator_params: 24867059" in out and "discriminator_params: 2765761" in out
  # the figure's discriminator: k4 s2 convs 4->64->128->256->512->1, with bias
  want = sum(16 * a * b + b for a, b in zip((4, 64, 128, 256, 512), (64, 128, 256, 512, 1),
                                        strict=True))
  assert want == 2_765_761


def test_masks_are_updated_like_partial_convolution():
  pred, inter = _run()
  _, mask = _inputs()
  assert pred.shape == (2, 32, 32, 3)
  assert float(pred.min()) > 0.0 and float(pred.max()) < 1.0
  known = np.asarray(1.0 - mask)
  # level 0: 7x7 window (padding 3) stride 2 over the input mask, then 9x9, 7x7, 5x5
  for i, k in enumerate((7, 9, 7, 5)):
    m = np.asarray(inter[f"mask_{i}"][0])
    assert m.shape == (2, 32 >> (i + 1), 32 >> (i + 1), 1)
    pad = np.pad(known, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    want = np.stack([[[pad[n, 2 * y:2 * y + k, 2 * x:2 * x + k].max()
                       for x in range(known.shape[2] // 2)] for y in range(known.shape[1] // 2)]
                     for n in range(2)])[..., None]
    np.testing.assert_array_equal(m, want)
    known = m
  assert np.asarray(inter["mask_0"][0]).mean() < 1.0  # a hole survives level 0


def test_pam_starts_as_a_no_op():
  # Parameters are drawn per module name, so the same key gives both nets the same
  # weights; PAM's scales start at 0, so its output is the plain decoder's.
  _, v = _init()
  _, v_off = _init(pam=False)
  params = dict(v["params"])
  scales = {k: params.pop(k) for k in list(params) if k.startswith("pam_")}
  assert sorted(scales) == ["pam_1_fine_scale", "pam_1_scale", "pam_2_fine_scale",
                            "pam_2_scale"]
  assert all(float(x) == 0.0 for x in scales.values())
  jax.tree.map(np.testing.assert_array_equal, params, dict(v_off["params"]))
  np.testing.assert_allclose(np.asarray(_run()[0]), np.asarray(_run(pam=False)[0]), atol=1e-6)
  # the attention itself is not trivial: PAM's output at level 2 is sown
  pam2 = np.asarray(_run()[1]["pam_2"][0])
  assert pam2.shape == (2, 4, 4, 64) and np.abs(pam2).max() > 0


@pytest.mark.parametrize("options", [dict(pyconv=False), dict(dynamic_norm=False),
                                     dict(dynamic_norm=False, static_norm="batch"),
                                     dict(pam_keys="encoder")])
def test_ablation_switches_change_the_network(options):
  g, v = _init(**options)
  image, mask = _inputs()
  if "pyconv" in options:
    assert "branch_0" not in v["params"]["enc_1"]
    assert v["params"]["enc_1"]["kernel"].shape == (3, 3, 16, 64)
  else:
    assert "branch_3" in v["params"]["enc_1"]
  if options.get("static_norm") == "batch":
    assert "batch_stats" in v and "scale" in v["params"]["enc_1_norm"]
    pred = jax.jit(functools.partial(g.apply, train=True, mutable=["batch_stats"]))(
        v, image, mask)[0]["pred"]
  else:
    pred = _run(**options)[0]
  assert pred.shape == (2, 32, 32, 3) and np.all(np.isfinite(np.asarray(pred)))
  if options == dict(dynamic_norm=False):
    # Same weights (region norm either way), different masks: the static norm reads the
    # input mask sampled every 2**(i+1) pixels instead of the updated mask_i.
    assert jax.tree.structure(v) == jax.tree.structure(_init()[1])
    assert float(jnp.max(jnp.abs(pred - _run()[0]))) > 1e-4


def test_bad_options_and_sizes_are_refused():
  image, mask = _inputs()
  def init(g, image, mask):
    return jax.eval_shape(functools.partial(g.init, train=False), jax.random.PRNGKey(0),
                          image, mask)

  with pytest.raises(ValueError, match="multiples of 16"):
    init(DPNet(**SMALL), image[:, :24], mask[:, :24])
  with pytest.raises(ValueError, match="pam_levels"):
    init(DPNet(**SMALL, pam_levels=(3,)), image, mask)
  with pytest.raises(ValueError, match="groups=16 must divide"):
    init(DPNet(widths=(8, 32, 32, 32)), image, mask)
  with pytest.raises(ValueError, match="unknown variant"):
    dpnet_config.get_config("places")


def test_discriminator_follows_the_figure():
  d = DPNetPatchDiscriminator()
  x = jnp.zeros((2, 64, 64, 4))
  v = jax.eval_shape(functools.partial(d.init, train=False), jax.random.PRNGKey(0), x)
  (logits, feats), state = jax.eval_shape(
      functools.partial(d.apply, train=True, mutable=["spectral"]), v, x)
  assert logits.shape == (2, 2, 2, 1)  # H / 32
  assert [f.shape[1:] for f in feats] == [(32, 32, 64), (16, 16, 128), (8, 8, 256),
                                          (4, 4, 512)]
  # a small copy runs: the spectral vectors move and stay unit-norm
  small = DPNetPatchDiscriminator(widths=(4, 4, 4, 4))
  xs = jax.random.normal(jax.random.PRNGKey(1), (1, 32, 32, 4))
  vs = jax.jit(functools.partial(small.init, train=False))(jax.random.PRNGKey(0), xs)
  (ls, _), st = jax.jit(functools.partial(small.apply, train=True, mutable=["spectral"]))(
      vs, xs)
  assert ls.shape == (1, 1, 1, 1)
  u = np.asarray(st["spectral"]["conv_2"]["u"])
  assert np.isclose(np.linalg.norm(u), 1.0, atol=1e-5)
  assert not np.allclose(u, np.asarray(vs["spectral"]["conv_2"]["u"]))
  assert sorted(state["spectral"]) == [f"conv_{i}" for i in range(5)]
  np.testing.assert_allclose(np.asarray(patch_probability(jnp.zeros((1, 2, 2, 1)))), [0.5])


def test_inference_adapter_keeps_known_pixels():
  config = dpnet_config.get_config("tiny")
  g, v = _init()
  adapter = adapters.get_adapter(config)
  assert adapter.size_multiple == 16
  image, mask = _inputs()

  @jax.jit
  def both(v, image, mask):
    return adapter.forward(g, v, image, mask), engine.composite(adapter, g, v, image, mask)

  pred, composite = both(v, image, mask)
  composite = np.asarray(composite)
  np.testing.assert_allclose(np.asarray(pred), np.asarray(_run()[0]), atol=1e-6)
  known = np.asarray(mask) == 0
  np.testing.assert_array_equal(composite[np.broadcast_to(known, composite.shape)],
                                np.asarray(image)[np.broadcast_to(known, composite.shape)])


def test_pyconv_dense_and_grouped_agree():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 8, 8, 32))
  layer = PyConv(64, strides=2, impl="grouped")
  v = layer.init(jax.random.PRNGKey(1), x)
  np.testing.assert_allclose(np.asarray(layer.apply(v, x)),
                             np.asarray(PyConv(64, strides=2, impl="dense").apply(v, x)),
                             atol=1e-5)
