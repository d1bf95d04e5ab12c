"""DPNet's pieces against hand-computed references: contextual attention, PyConv, region norm."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models import contextual_attention as ca
from inpaint_jax.models.dpnet.network import update_mask
from inpaint_jax.models.pyconv import PyConv, param_count, pyramid
from inpaint_jax.models.region_norm import RegionNorm, region_normalize, region_stats

pytestmark = pytest.mark.usefixtures("fast_compile")


# --------------------------------------------------------------------------------------
# Contextual attention
# --------------------------------------------------------------------------------------
def _tf_same(size, k, s):
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2, out


def _reference_ca(f, b, mask, rate=2, ksize=3, scale=10.0, fuse=True):
  """DeepFill's TF ops written out with loops (one example, float64)."""
  f, b, mask = (np.asarray(a, np.float64) for a in (f, b, mask))
  h, w, c = b.shape
  # raw 2r x 2r patches of b at stride r, "SAME"
  kr = 2 * rate
  t, _, oh = _tf_same(h, kr, rate)
  lft, _, ow = _tf_same(w, kr, rate)
  bp = np.pad(b, ((t, kr), (lft, kr), (0, 0)))
  raw = [bp[i * rate:i * rate + kr, j * rate:j * rate + kr] for i in range(oh) for j in range(ow)]
  fd, bd, md = f[::rate, ::rate], b[::rate, ::rate], mask[::rate, ::rate]
  hd, wd = bd.shape[:2]
  p = ksize // 2
  bdp, mdp, fdp = (np.pad(a, ((p, p), (p, p), (0, 0))) for a in (bd, md, fd))
  keys = [bdp[i:i + ksize, j:j + ksize] for i in range(hd) for j in range(wd)]
  keys = [k / max(np.sqrt((k ** 2).sum()), 1e-4) for k in keys]
  mm = np.array([float(mdp[i:i + ksize, j:j + ksize].mean() == 0) for i in range(hd)
                 for j in range(wd)])
  s = np.zeros((hd, wd, len(keys)))
  for y in range(hd):
    for x in range(wd):
      for li, k in enumerate(keys):
        s[y, x, li] = (fdp[y:y + ksize, x:x + ksize] * k).sum()
  if fuse:
    def conv_eye(m):  # tf.nn.conv2d(m, eye(3), SAME) on a (Q, L) matrix
      out = np.zeros_like(m)
      for qi in range(m.shape[0]):
        for li in range(m.shape[1]):
          for a in (-1, 0, 1):
            if 0 <= qi + a < m.shape[0] and 0 <= li + a < m.shape[1]:
              out[qi, li] += m[qi + a, li + a]
      return out
    y1 = conv_eye(s.reshape(hd * wd, hd * wd)).reshape(hd, wd, hd, wd)
    y1 = y1.transpose(1, 0, 3, 2).reshape(wd * hd, wd * hd)
    s = conv_eye(y1).reshape(wd, hd, wd, hd).transpose(1, 0, 3, 2).reshape(hd, wd, -1)
  s = s * mm
  e = np.exp(scale * s - (scale * s).max(-1, keepdims=True))
  att = e / e.sum(-1, keepdims=True) * mm
  # conv2d_transpose(att, raw, output (h, w), stride r, "SAME") / 4
  full = np.zeros(((hd - 1) * rate + kr, (wd - 1) * rate + kr, c))
  for y in range(hd):
    for x in range(wd):
      for li, patch in enumerate(raw):
        full[y * rate:y * rate + kr, x * rate:x * rate + kr] += att[y, x, li] * patch
  top, _, _ = _tf_same(h, kr, rate)
  left, _, _ = _tf_same(w, kr, rate)
  return full[top:top + h, left:left + w] / 4.0, att


@pytest.mark.parametrize("fuse", [True, False])
def test_contextual_attention_matches_deepfill_ops_written_out(fuse):
  rng = np.random.default_rng(0)
  f = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
  b = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
  mask = np.zeros((2, 8, 8, 1), np.float32)
  mask[0, 2:6, 2:6] = 1.0
  mask[1, 0:4, 4:8] = 1.0
  run = jax.jit(lambda f, b, m: ca.contextual_attention(f, b, m, fuse=fuse,
                                                        return_weights=True))
  y, att = run(jnp.asarray(f), jnp.asarray(b), jnp.asarray(mask))
  assert y.shape == (2, 8, 8, 2) and att.shape == (2, 4, 4, 16)
  for n in range(2):
    want, want_att = _reference_ca(f[n], b[n], mask[n], fuse=fuse)
    np.testing.assert_allclose(np.asarray(att[n]), want_att, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y[n]), want, atol=1e-5)


def _shifted_copy_case():
  """b random; f is b with its hole (rows 8..15, cols 8..15) filled by b 8 columns left."""
  rng = np.random.default_rng(1)
  b = 10.0 * rng.normal(size=(1, 16, 16, 3)).astype(np.float32)
  hole = np.zeros((1, 16, 16, 1), np.float32)
  hole[:, 8:16, 8:16] = 1.0
  f = b.copy()
  f[:, 8:16, 8:16] = b[:, 8:16, 0:8]
  return f, b, hole


def test_best_match_is_the_copied_patch_and_hole_keys_get_nothing():
  f, b, hole = _shifted_copy_case()
  w = np.asarray(jax.jit(ca.attention_weights)(jnp.asarray(f), jnp.asarray(b),
                                               jnp.asarray(hole)))
  valid = np.asarray(ca.key_validity(jnp.asarray(hole)))[0]
  # keys whose 3x3 patch touches the hole: exactly zero weight; rows sum to 1
  assert np.all(w[0][..., valid == 0] == 0.0)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  assert valid.reshape(16, 16)[7, 7] == 0 and valid.reshape(16, 16)[6, 6] == 1
  # a query deep inside the hole matches the key 8 columns to its left
  for y, x in [(10, 10), (12, 13), (14, 9)]:
    assert int(np.argmax(w[0, y, x])) == y * 16 + (x - 8)
    assert w[0, y, x].max() > 0.99


def test_pasting_copies_the_matched_content_at_every_level():
  f, b, hole = _shifted_copy_case()
  fine = np.repeat(np.repeat(b, 2, axis=1), 2, axis=2)  # a finer map aligned with b
  run = jax.jit(lambda f, h, b, fine: ca.pyramidal_attention(f, f, h, [(b, 1), (fine, 2)]))
  same, finer = run(jnp.asarray(f), jnp.asarray(hole), jnp.asarray(b), jnp.asarray(fine))
  assert same.shape == (1, 16, 16, 3) and finer.shape == (1, 32, 32, 3)
  # interior of the hole: the pasted values are the source 8 columns to the left
  np.testing.assert_allclose(np.asarray(same)[0, 10:14, 10:14], b[0, 10:14, 2:6], rtol=1e-3,
                             atol=1e-2)
  np.testing.assert_allclose(np.asarray(finer)[0, 20:28, 20:28], fine[0, 20:28, 4:12],
                             rtol=1e-3, atol=1e-2)


def test_fuse_sums_along_the_diagonal():
  s = jnp.zeros((1, 2, 2, 2, 2)).at[0, 0, 0, 0, 0].set(1.0).at[0, 0, 1, 0, 1].set(2.0)
  y = np.asarray(ca.fuse_scores(s))[0]
  # S has 1 at (q, k) = ((0,0), (0,0)) and 2 at ((0,1), (0,1)). Row-major flattening
  # (q = 2 y + x): diagonal neighbours of flat (1, 1) are (0, 0) and (2, 2), so pass one
  # gives flat (0,0) = 3, (1,1) = 3, (2,2) = 2 (the 2 wraps onto query (1,0) / key (1,0)).
  # Column-major (q = 2 x + y): query (0,0) -> 0, (1,0) -> 1, (0,1) -> 2, (1,1) -> 3, so
  # the values 3, 2, 3 sit at flat 0, 1, 2 and pass two gives 5, 8, 5, 3.
  assert (y[0, 0, 0, 0], y[1, 0, 1, 0], y[0, 1, 0, 1], y[1, 1, 1, 1]) == (5.0, 8.0, 5.0, 3.0)
  assert np.count_nonzero(y) == 4  # only matching (query, key) offsets are fused


def test_patch_extraction_uses_tf_same_padding():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  p = np.asarray(ca.extract_patches(x, 4, 2))  # pad (1, 1): patch 0 covers rows -1..2
  assert p.shape == (1, 2, 2, 4, 4, 1)
  assert p[0, 0, 0, 0, 0, 0] == 0.0 and p[0, 0, 0, 1, 1, 0] == 0.0 and p[0, 1, 1, 1, 1, 0] == 10.0
  with pytest.raises(ValueError, match="must be 8x8"):
    ca.pyramidal_attention(x, x, None, [(x, 2)])


# --------------------------------------------------------------------------------------
# PyConv
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [4, 3, 2, 1])
def test_pyconv_shapes_and_parameter_count(levels):
  c_in, c_out = 32, 64
  kernels, groups, splits = pyramid(levels, c_out)
  layer = PyConv(c_out, kernels, groups, strides=2)
  x = jnp.zeros((2, 16, 12, c_in))
  v = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)
  y = jax.eval_shape(layer.apply, v, x)
  assert y.shape == (2, 8, 6, c_out)
  n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(v))
  assert n == param_count(c_in, kernels, groups, splits)
  want = {4: 9 * 32 * 16 + 25 * 8 * 16 + 49 * 4 * 16 + 81 * 2 * 16,
          3: 9 * 32 * 16 + 25 * 8 * 16 + 49 * 4 * 32,
          2: 9 * 32 * 32 + 25 * 8 * 32, 1: 9 * 32 * 64}[levels]
  assert n == want
  assert splits == {4: (16,) * 4, 3: (16, 16, 32), 2: (32, 32), 1: (64,)}[levels]


def test_pyconv_branches_are_grouped_convolutions():
  layer = PyConv(16, (3, 5), (1, 4))
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 6, 6, 8))
  v = layer.init(jax.random.PRNGKey(1), x)
  y = np.asarray(layer.apply(v, x))
  # branch 1 by hand: group g maps input channels 2g..2g+1 to output channels 2g..2g+1
  k1 = v["params"]["branch_1"]["kernel"]  # (5, 5, 2, 8)
  xp = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  for g in range(4):
    ref = jax.lax.conv_general_dilated(xp[..., 2 * g:2 * g + 2], k1[..., 2 * g:2 * g + 2],
                                       (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(y[..., 8 + 2 * g:8 + 2 * g + 2], np.asarray(ref), atol=1e-5)
  with pytest.raises(ValueError, match="groups=16 must divide"):
    PyConv(64).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 8)))


# --------------------------------------------------------------------------------------
# Region normalisation and the mask update
# --------------------------------------------------------------------------------------
def _region_case():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 4, 4, 3)).astype(np.float32) * 3 + 1
  valid = np.ones((2, 4, 4, 1), np.float32)
  valid[0, 1:3, 1:4] = 0.0
  valid[1, 0, :] = 0.0
  x[..., 0] += 5.0 * (1 - valid[..., 0])  # the hole region has its own statistics
  return x, valid


def test_region_statistics_per_region_by_hand():
  x, valid = _region_case()
  for region in (valid, 1 - valid):
    sel = x[region[..., 0] > 0]  # (pixels, C) over batch and space
    mu, var = region_stats(jnp.asarray(x), jnp.asarray(region))
    np.testing.assert_allclose(np.asarray(mu), sel.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(var), sel.var(0), rtol=1e-5)
    y = np.asarray(region_normalize(jnp.asarray(x), jnp.asarray(region)))
    frac = len(sel) / (2 * 4 * 4)
    want = (sel - sel.mean(0)) / np.sqrt(sel.var(0) + 1e-5 / frac)
    np.testing.assert_allclose(y[region[..., 0] > 0], want, rtol=1e-5, atol=1e-6)
    assert np.all(y[region[..., 0] == 0] == 0.0)


def test_region_norm_affine_per_region():
  x, valid = _region_case()
  layer = RegionNorm()
  v = layer.init(jax.random.PRNGKey(0), x, valid)
  assert sorted(v["params"]) == ["hole_beta", "hole_gamma", "valid_beta", "valid_gamma"]
  params = {"valid_gamma": jnp.full(3, 1.0), "valid_beta": jnp.full(3, 0.5),
            "hole_gamma": jnp.full(3, -0.5), "hole_beta": jnp.full(3, -2.0)}
  y = np.asarray(layer.apply({"params": params}, x, valid))
  xv = np.asarray(region_normalize(jnp.asarray(x), jnp.asarray(valid)))
  xh = np.asarray(region_normalize(jnp.asarray(x), jnp.asarray(1 - valid)))
  want = (xv * 2.0 + 0.5) * valid + (xh * 0.5 - 2.0) * (1 - valid)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
  shared = np.asarray(RegionNorm(shared_beta=True).apply({"params": params}, x, valid))
  np.testing.assert_allclose(shared, xv * 2.0 + xh * 0.5 - 1.5, rtol=1e-5, atol=1e-6)


def test_region_norm_matches_the_reference_batchnorm_formulation():
  torch = pytest.importorskip("torch")
  x, valid = _region_case()
  xt = torch.from_numpy(x).permute(0, 3, 1, 2).double()
  mt = torch.from_numpy(valid).permute(0, 3, 1, 2).double()
  total = xt.shape[0] * xt.shape[2] * xt.shape[3]
  out = 0
  for r in (mt, 1 - mt):
    region = xt * r
    s = r.sum().clamp(min=1)
    mu = region.sum(dim=(0, 2, 3)) / s
    padded = region + (1 - r) * mu[None, :, None, None]
    out = out + torch.nn.functional.batch_norm(padded, None, None, training=True,
                                               eps=1e-5) * torch.sqrt(s / total)
  want = out.permute(0, 2, 3, 1).numpy()
  got = np.asarray(region_normalize(jnp.asarray(x), jnp.asarray(valid)) +
                   region_normalize(jnp.asarray(x), jnp.asarray(1 - valid)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mask_update_grows_the_valid_region_by_the_window():
  valid = jnp.zeros((1, 8, 8, 1)).at[0, 3, 3].set(1.0)
  m1 = np.asarray(update_mask(valid, 3, 1))[0, ..., 0]
  assert m1.sum() == 9 and m1[2:5, 2:5].min() == 1.0
  m2 = np.asarray(update_mask(valid, 5, 2))[0, ..., 0]  # window rows 2i-2 .. 2i+2
  assert m2.shape == (4, 4)
  np.testing.assert_array_equal(np.argwhere(m2 > 0), [[1, 1], [1, 2], [2, 1], [2, 2]])
  assert set(np.unique(m2)) <= {0.0, 1.0}
