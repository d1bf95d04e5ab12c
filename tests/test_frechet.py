"""Frechet distance against an eigenvalue formulation and a closed form."""

import numpy as np
import pytest

from inpaint_jax.metrics import frechet


def _frechet_by_eigenvalues(mu1, sigma1, mu2, sigma2):
  # tr sqrt(S1 S2) = sum of sqrt(eigenvalues of S1 S2): S1 S2 is similar to the
  # PSD S1^1/2 S2 S1^1/2, so its eigenvalues are real and >= 0 (up to rounding).
  eig = np.linalg.eigvals(sigma1 @ sigma2)
  tr_covmean = np.sum(np.sqrt(np.clip(eig.real, 0.0, None)))
  diff = mu1 - mu2
  return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean


def test_matches_reference_and_closed_form():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16))
  b = rng.standard_normal((250, 16)) * 1.3 + 0.4
  got = frechet.fid_from_features(a.astype(np.float32), b.astype(np.float32))
  mu1, s1 = a.astype(np.float32).astype(np.float64).mean(0), np.cov(
      a.astype(np.float32).astype(np.float64), rowvar=False)
  mu2, s2 = b.astype(np.float32).astype(np.float64).mean(0), np.cov(
      b.astype(np.float32).astype(np.float64), rowvar=False)
  assert abs(got - _frechet_by_eigenvalues(mu1, s1, mu2, s2)) < 1e-7
  # Commuting (diagonal) covariances: |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
  v1, v2 = rng.random(8) + 0.1, rng.random(8) + 0.1
  m1, m2 = rng.random(8), rng.random(8)
  want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  assert abs(frechet.frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) - want) < 1e-10
  assert abs(frechet.fid_from_features(a, a)) < 1e-6


def test_needs_two_samples():
  with pytest.raises(ValueError, match="N >= 2"):
    frechet.gaussian_stats(np.zeros((1, 4)))
