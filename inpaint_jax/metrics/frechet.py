"""The Frechet distance between two Gaussians fitted to feature sets, as pytorch-fid does it.

FID = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2)), with the means and the
unbiased covariances (`np.cov(rowvar=False)`) of the two feature sets, all in float64 with
`scipy.linalg.sqrtm` (pytorch-fid `calculate_frechet_distance`): if the square root is not
finite, 1e-6 is added to both diagonals and it is taken again; a complex result whose
diagonal has an imaginary part above 1e-3 is an error, a smaller one is dropped.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean (D,), covariance (D, D)) in float64 of (N, D) features; N must be >= 2."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"need (N >= 2, D) features for a covariance, got shape {f.shape}")
  return np.mean(f, axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
  """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2); (D,) means, (D, D) covariances."""
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2,
                                                                                  np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f"mismatched statistics: means {mu1.shape} / {mu2.shape}, covariances "
                     f"{sigma1.shape} / {sigma2.shape}")
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
    covmean = covmean.real
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
  """FID of two (N, D) feature sets (e.g. Inception pool3 of results and of originals)."""
  return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))
