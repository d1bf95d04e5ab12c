"""The LaMa study's experiments: generator switches, WGAN-GP critic schedule, masks, configs."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import summary, train
from inpaint_jax.data import masks
from inpaint_jax.models.lama.ffc import FFC_BN_ACT, FFCResnetBlock, split_channels
from inpaint_jax.models.lama.network import FFCResNetGenerator
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

sys.path.insert(0, helpers.REPO)
from configs import lama_study  # noqa: E402


# --- The study's parameter formula (its PyTorch modules, every conv with a bias). ---
def _conv(cin: int, cout: int, k: int) -> int:
  return cin * cout * k * k + cout


def _bn(c: int) -> int:
  return 2 * c


def _spectral(cin: int, cout: int) -> int:
  """1x1 conv cin->h + BN, spectral 1x1 conv 2h->2h + BN, 1x1 conv h->cout; h = cout // 2."""
  h = cout // 2
  return _conv(cin, h, 1) + _bn(h) + _conv(2 * h, 2 * h, 1) + _bn(2 * h) + _conv(h, cout, 1)


def _study_block(dim: int, ratio: float, l2g_spectral: bool) -> int:
  g = round(dim * ratio)
  lo = dim - g
  l2g = _spectral(lo, g) if l2g_spectral else _conv(lo, g, 3)
  return _conv(lo, lo, 3) + l2g + _conv(g, lo, 3) + _spectral(g, g) + _bn(lo) + _bn(g)


def _study_generator(l2g_spectral: bool, ngf=64, n_blocks=9, ratio=0.6) -> int:
  n = _conv(4, ngf, 7) + _bn(ngf)
  for i in range(3):
    n += _conv(ngf * 2 ** i, ngf * 2 ** (i + 1), 3) + _bn(ngf * 2 ** (i + 1))
  n += n_blocks * _study_block(ngf * 8, ratio, l2g_spectral)
  for i in range(3):
    c = ngf * 2 ** (3 - i)
    n += _conv(c, c // 2, 3) + _bn(c // 2)  # ConvTranspose: same count
  return n + _conv(ngf, 3, 7)


def _count(variables) -> int:
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("l2g_spectral", [False, True])
def test_study_block_shapes_and_parameter_count_match_the_study_formula(l2g_spectral):
  dim = 512
  lo, g = split_channels(dim, 0.6)
  assert (lo, g) == (205, 307)  # the study: round(512 * 0.6) global channels
  block = FFCResnetBlock(dim, 0.6, 0.6, l2g_spectral=l2g_spectral, use_bias=True,
                         share_weights=True)
  x = (jnp.zeros((2, 8, 8, lo)), jnp.zeros((2, 8, 8, g)))
  variables = jax.eval_shape(lambda: block.init(jax.random.PRNGKey(0), x, train=False))
  out = jax.eval_shape(lambda v: block.apply(v, x, train=False), variables)
  assert [o.shape for o in out] == [(2, 8, 8, lo), (2, 8, 8, g)]
  assert _count(variables) == _study_block(dim, 0.6, l2g_spectral)
  ffc = variables["params"]["conv1"]["ffc"]
  assert "conv2" not in variables["params"]  # one layer, applied twice
  assert ("convg2g" in ffc) and (("conv1" in ffc["convl2g"]) == l2g_spectral)


def test_spectral_l2g_forward_and_shared_layer_applied_twice():
  lo, g = split_channels(16, 0.6)
  block = FFCResnetBlock(16, 0.6, 0.6, l2g_spectral=True, use_bias=True, share_weights=True)
  k1, k2 = jax.random.split(jax.random.PRNGKey(1))
  x = (jax.random.normal(k1, (2, 8, 8, lo)), jax.random.normal(k2, (2, 8, 8, g)))
  variables = block.init(jax.random.PRNGKey(0), x, train=False)
  y = block.apply(variables, x, train=False)
  f = FFC_BN_ACT(16, 3, 0.6, 0.6, padding=1, l2g_spectral=True, use_bias=True)
  sub = {k: v["conv1"] for k, v in variables.items()}
  twice = f.apply(sub, f.apply(sub, x, train=False), train=False)
  for a, b, inp in zip(y, twice, x, strict=True):
    assert a.shape == inp.shape and bool(jnp.all(jnp.isfinite(a)))
    np.testing.assert_allclose(a, inp + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw,want", [
    ({}, 27_048_835),
    ({"n_blocks": 18}, 50_975_875),
    ({"ratio_g": 0.6, "share_block_weights": True, "use_bias": True}, _study_generator(False)),
    ({"ratio_g": 0.6, "share_block_weights": True, "use_bias": True, "l2g_spectral": True},
     _study_generator(True)),
])
def test_generator_parameter_counts(kw, want):
  model = FFCResNetGenerator(**kw)
  v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                                        jnp.zeros((1, 64, 64, 1)), train=False))
  assert _count(v) == want


def test_study_formula_gives_the_hand_counts():
  assert (_study_generator(False), _study_generator(True)) == (18_441_277, 14_903_683)


@pytest.mark.parametrize("variant,g,d", [
    ("baseline", 18_441_277, 2_766_529),
    ("conv_change", 14_903_683, 2_766_529),
    ("wgan", 18_441_277, 2_765_568),  # no conv bias: 961 fewer
])
def test_summary_counts_per_variant(variant, g, d, capsys):
  counts = summary.summary(lama_study.get_config(variant))
  assert counts == {"generator_params": g, "discriminator_params": d}
  assert f"generator_params: {g}" in capsys.readouterr().out


def _update_count(state, net) -> int:
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
  counts = [int(v) for p, v in leaves if jax.tree_util.keystr(p).startswith(
      f".nets['{net}'].opt_state") and jax.tree_util.keystr(p).endswith(".count")]
  assert counts, f"no optimiser count for {net}"
  return counts[0]


@pytest.mark.slow
def test_wgan_critic_is_stepped_five_times_per_generator_step(tmp_path):
  config = lama_study.get_config("wgan,tiny")
  config.total_steps = config.checkpoint_every_steps = 2
  state = train.train_and_evaluate(config, str(tmp_path))
  assert _update_count(state, "g") == 2
  assert _update_count(state, "d") == 10
  assert helpers.load_meta(str(tmp_path), 2)["data_position"] == 10  # fresh batches
  row = helpers.read_metrics(str(tmp_path))[-1]
  assert {"g/adv", "d/adv", "d/gp", "d/adv/wasserstein"} <= set(row)
  assert "g/l1" not in row


@pytest.mark.slow
def test_conv_change_tiny_trains_and_logs_the_study_terms(tmp_path):
  config = lama_study.get_config("conv_change,tiny")
  config.total_steps = config.checkpoint_every_steps = 1
  train.train_and_evaluate(config, str(tmp_path))
  row = helpers.read_metrics(str(tmp_path))[-1]
  assert {"g/adv", "d/adv", "d/r1"} <= set(row) and "g/l1" not in row
  assert all(np.isfinite(v) for k, v in row.items() if k.startswith(("g/", "d/")))


def test_config_switches():
  base = lama_study.get_config("baseline")
  assert set(base.losses.generator) == {"adv", "hrfpl", "vgg"}
  assert base.losses.generator.adv.weight == 10.0 and base.losses.discriminator.adv.weight == 1
  assert lama_study.get_config("baseline,d_kappa").losses.discriminator.adv.weight == 10.0
  lama = lama_study.get_config("conv_change,lama_losses")
  assert set(lama.losses.generator) == {"l1", "adv", "fm", "hrfpl"}
  assert lama.generator.l2g_spectral and not base.generator.l2g_spectral
  wgan = lama_study.get_config("wgan,demo")
  assert (wgan.train.n_critic, wgan.discriminator.norm, wgan.discriminator.use_bias) == (
      5, "instance", False)
  assert set(wgan.losses.generator) == {"adv"}  # perceptual terms need weight files
  assert set(lama_study.get_config("wgan,demo,perceptual").losses.generator) == {
      "adv", "hrfpl", "vgg"}
  with pytest.raises(ValueError, match="unknown variant"):
    lama_study.get_config("big")


# --- Masks: an independent, literal transcription of the study's sampler. ---
def _reference_mask(rng: np.random.Generator, h: int = 256, w: int = 256) -> np.ndarray:
  """The study's procedure; strokes drawn as capsules of radius t / 2 (not cv2)."""
  out = np.zeros((h, w), bool)
  if rng.uniform(0, 1) < 0.5:
    n = int(rng.uniform(1, 4))
    y, x = int(rng.uniform(0, h)), int(rng.uniform(0, w))
    rows, cols = np.mgrid[0:h, 0:w]
    for _ in range(n):
      a, ln, t = rng.uniform(0, 2 * np.pi), int(rng.uniform(10, 150)), int(rng.uniform(5, 70))
      x1 = int(np.clip(int(x + ln * np.sin(a)), 0, w))
      y1 = int(np.clip(int(y + ln * np.cos(a)), 0, h))
      d = np.array([x1 - x, y1 - y], float)
      s = np.clip(((cols - x) * d[0] + (rows - y) * d[1]) / max(d @ d, 1e-9), 0, 1)
      dist2 = (cols - x - s * d[0]) ** 2 + (rows - y - s * d[1]) ** 2
      out |= dist2 <= (t / 2) ** 2
      x, y = x1, y1
  else:
    n = int(rng.uniform(1, 4))
    for k in range(n):
      bh, bw = int(rng.uniform(50, 150)), int(rng.uniform(50, 150))
      x0, y0 = int(rng.uniform(10, w - 10 - bw)), int(rng.uniform(10, h - 10 - bh))
      trial = out.copy()
      trial[y0:y0 + bh, x0:x0 + bw] = True
      if k and trial.mean() >= 0.5:
        break
      out = trial
  return out


def test_study_masks_area_distribution_over_2000_draws():
  n = 2000
  gen = masks.build({"kind": "study_mixed"})
  rngs = [np.random.default_rng([7, i]) for i in range(n)]
  is_polygon, _, boxes = gen.sample_primitives(rngs, 256, 256)
  area = gen.sample_many([np.random.default_rng([7, i]) for i in range(n)], 256, 256).mean((1, 2))
  assert abs(is_polygon.mean() - 0.5) < 0.04  # 50/50, 3.6 sigma
  assert area.min() > 0 and area[~is_polygon].max() < 0.5
  counts = boxes.boxes_per_mask[~is_polygon]
  assert set(np.unique(counts)) == {1, 2, 3}
  ref = np.array([_reference_mask(np.random.default_rng([8, i])).mean() for i in range(n)])
  # The reference's kind is its first draw.
  ref_is_poly = np.array([np.random.default_rng([8, i]).uniform(0, 1) < 0.5 for i in range(n)])
  for ours, theirs, rel in ((area[is_polygon], ref[ref_is_poly], 0.06),
                            (area[~is_polygon], ref[~ref_is_poly], 0.0)):
    se = np.hypot(ours.std() / np.sqrt(ours.size), theirs.std() / np.sqrt(theirs.size))
    assert abs(ours.mean() - theirs.mean()) < 4 * se + rel * theirs.mean(), (
        ours.mean(), theirs.mean())
    for q in (0.1, 0.5, 0.9):
      assert abs(np.quantile(ours, q) - np.quantile(theirs, q)) < 0.03 + rel * theirs.mean()


def test_square_masks_are_boxes_only_and_deterministic_per_example():
  gen = masks.build({"kind": "square", "scale": 0.25})
  rngs = [np.random.default_rng([3, i]) for i in range(300)]
  is_polygon, seg, _ = gen.sample_primitives(rngs, 64, 64)
  assert not is_polygon.any() and seg.x0.size == 0
  batch = gen.sample_many([np.random.default_rng([3, i]) for i in range(300)], 64, 64)
  area = batch.mean((1, 2))
  assert 0 < area.min() and area.max() < 0.5
  np.testing.assert_array_equal(batch[17], gen.sample(np.random.default_rng([3, 17]), 64, 64))
  rng = np.random.default_rng(5)
  seq = np.stack([gen.sample(rng, 64, 64) for _ in range(4)])
  np.testing.assert_array_equal(seq, gen.sample_batch(np.random.default_rng(5), 4, 64, 64))
  with pytest.raises(ValueError, match="scale"):
    masks.build({"kind": "square", "scale": -1.0})
