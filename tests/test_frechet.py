"""Frechet distance against pytorch-fid's formula written out in the test."""

import numpy as np
import pytest
from scipy import linalg

from inpaint_jax.metrics import frechet


def _pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
  # pytorch_fid.fid_score.calculate_frechet_distance (0.3.0), verbatim apart from names.
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    covmean = covmean.real
  return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def test_matches_reference_and_closed_form():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16))
  b = rng.standard_normal((250, 16)) * 1.3 + 0.4
  got = frechet.fid_from_features(a.astype(np.float32), b.astype(np.float32))
  mu1, s1 = a.astype(np.float32).astype(np.float64).mean(0), np.cov(
      a.astype(np.float32).astype(np.float64), rowvar=False)
  mu2, s2 = b.astype(np.float32).astype(np.float64).mean(0), np.cov(
      b.astype(np.float32).astype(np.float64), rowvar=False)
  assert abs(got - _pytorch_fid(mu1, s1, mu2, s2)) < 1e-9
  # Commuting (diagonal) covariances: |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
  v1, v2 = rng.random(8) + 0.1, rng.random(8) + 0.1
  m1, m2 = rng.random(8), rng.random(8)
  want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  assert abs(frechet.frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) - want) < 1e-10
  assert abs(frechet.fid_from_features(a, a)) < 1e-6


def test_needs_two_samples():
  with pytest.raises(ValueError, match="N >= 2"):
    frechet.gaussian_stats(np.zeros((1, 4)))
