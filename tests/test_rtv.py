"""RTV against a direct sparse solve of the same system, built here with SciPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal, sparse
from scipy.sparse import linalg as sparse_linalg

from inpaint_jax.models.dgfnet import rtv as rtv_lib


def _matlab_round(x: float) -> int:
  return int(np.floor(x + 0.5))


def _weights(s, sigma, sharpness, hole):
  """The reference's texture weights in float64, written from its description."""
  fx = np.zeros_like(s)
  fy = np.zeros_like(s)
  fx[:, :-1] = np.diff(s, axis=1)
  fy[:-1] = np.diff(s, axis=0)
  if hole is not None:
    fx = fx * (1.0 - hole[..., None])
    fy = fy * (1.0 - hole[..., None])
  w_o = 1.0 / np.maximum(np.sqrt(fx ** 2 + fy ** 2).mean(axis=2), sharpness)
  length = _matlab_round(5 * sigma) | 1
  t = np.arange(length) - (length - 1) / 2
  g = np.exp(-t ** 2 / (2 * sigma ** 2))
  g /= g.sum()
  blur = np.stack([signal.convolve2d(signal.convolve2d(s[..., c], g[None], mode="same"),
                                     g[:, None], mode="same") for c in range(s.shape[2])], 2)
  gx = np.zeros_like(blur)
  gy = np.zeros_like(blur)
  gx[:, :-1] = np.diff(blur, axis=1)
  gy[:-1] = np.diff(blur, axis=0)
  wx = w_o / np.maximum(np.abs(gx).mean(axis=2), 1e-3)
  wy = w_o / np.maximum(np.abs(gy).mean(axis=2), 1e-3)
  wx[:, -1] = 0.0
  wy[-1, :] = 0.0
  return wx, wy


def _matrix(wx, wy, lam):
  """The reference's five-diagonal matrix, in its column-major pixel order."""
  h, w = wx.shape
  k = h * w
  dx = -lam * wx.flatten(order="F")
  dy = -lam * wy.flatten(order="F")
  # Sub-diagonals -h (right neighbour) and -1 (lower neighbour), as spdiags fills them.
  lower = sparse.diags([dx[:k - h], dy[:k - 1]], [-h, -1], shape=(k, k))
  west = np.concatenate([np.zeros(h), dx[:-h]])
  north = np.concatenate([np.zeros(1), dy[:-1]])
  diag = 1.0 - (dx + west + dy + north)
  return (lower + lower.T + sparse.diags(diag, 0)).tocsc()


def reference_rtv(image, lam=0.01, sigma=3.0, sharpness=0.02, n_iter=4, hole=None):
  """(H, W, C) float64 structure by direct solves (`spsolve`)."""
  h, w, c = image.shape
  lam = lam / 2.0
  s = image.copy()
  sig = sigma
  for _ in range(n_iter):
    wx, wy = _weights(s, sig, sharpness, hole)
    a = _matrix(wx, wy, lam)
    s = np.stack([sparse_linalg.spsolve(a, image[..., ch].flatten(order="F")).reshape(
        (h, w), order="F") for ch in range(c)], 2)
    sig = max(sig / 2.0, 0.5)
  return s


def _images(n=2, size=24, seed=0):
  """Piecewise-constant structure plus a fine stripe / noise texture, in [0, 1]."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size]
  out = []
  for i in range(n):
    base = np.where((xx + i * 3) > size // 2, 0.7, 0.25)[..., None] * np.array([1.0, 0.8, 0.6])
    stripes = 0.08 * np.sign(np.sin(xx * 2.1 + yy * 0.7 + i))[..., None]
    out.append(np.clip(base + stripes + 0.03 * rng.standard_normal((size, size, 3)), 0, 1))
  return np.stack(out)


@pytest.fixture(scope="module")
def data():
  images = _images()
  hole = np.zeros(images.shape[:3])
  hole[0, 6:14, 8:18] = 1.0
  hole[1, 2:9, 3:20] = 1.0
  return images, hole


def test_matches_direct_solve(data):
  images, _ = data
  texture, structure, steps = rtv_lib.rtv(jnp.asarray(images, jnp.float32), return_steps=True)
  ref = np.stack([reference_rtv(im) for im in images])
  err = np.abs(np.asarray(structure, np.float64) - ref).max()
  print(f"rtv vs spsolve: max abs error {err:.2e}, CG steps {np.asarray(steps)}")
  assert err <= 1e-3
  np.testing.assert_allclose(np.asarray(texture) + np.asarray(structure), images, atol=1e-6)
  # Smoothing removes texture: the structure's stripes are weaker than the image's.
  assert np.abs(np.diff(ref, axis=2)).mean() < 0.5 * np.abs(np.diff(images, axis=2)).mean()


def test_mask_aware_matches_direct_solve(data):
  images, hole = data
  masked = images * (1.0 - hole[..., None])
  _, structure = rtv_lib.rtv(jnp.asarray(masked, jnp.float32),
                             mask=jnp.asarray(hole[..., None], jnp.float32))
  ref = np.stack([reference_rtv(im, hole=h) for im, h in zip(masked, hole, strict=True)])
  err = np.abs(np.asarray(structure, np.float64) - ref).max()
  print(f"mask-aware rtv vs spsolve: max abs error {err:.2e}")
  assert err <= 1e-3
  # The mask changes the result (the hole's border is not an edge any more).
  plain = np.stack([reference_rtv(im) for im in masked])
  assert np.abs(plain - ref).max() > 1e-2


def test_single_image_float64_and_parameters(data):
  images, _ = data
  with jax.enable_x64(True):
    _, s64 = rtv_lib.rtv(jnp.asarray(images[0], jnp.float64), 0.015, 2.0, 0.01, 3,
                         cg_tol=1e-8)
    assert s64.dtype == jnp.float64 and s64.shape == images[0].shape
  ref = reference_rtv(images[0], 0.015, 2.0, 0.01, 3)
  np.testing.assert_allclose(np.asarray(s64), ref, atol=1e-6)


def test_taps_follow_matlab_rounding():
  assert [len(rtv_lib.gaussian_taps(s)) for s in (3.0, 1.5, 0.75, 0.5)] == [15, 9, 5, 3]
  assert rtv_lib.sigma_schedule(3.0, 4) == [3.0, 1.5, 0.75, 0.5]
  np.testing.assert_allclose(sum(rtv_lib.gaussian_taps(1.5)), 1.0)
