"""PSNR / SSIM / L1 against scikit-image, and the `lama` SSIM mode against LaMa's code."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inpaint_jax import metrics


def _pairs(n=3, h=40, w=52, c=3, seed=0):
  rng = np.random.default_rng(seed)
  target = rng.random((n, h, w, c)).astype(np.float32)
  # Smooth targets too, where SSIM's variances are small and float32 matters most.
  target[0] = np.cumsum(target[0], axis=0) / h
  noise = rng.standard_normal(target.shape).astype(np.float32) * np.float32(0.08)
  pred = np.clip(target + noise, 0, 1).astype(np.float32)
  return pred, target


@pytest.mark.parametrize("shape", [(3, 40, 52, 3), (2, 11, 17, 1), (2, 64, 64, 3)])
def test_against_skimage(shape):
  n, h, w, c = shape
  pred, target = _pairs(n, h, w, c)
  got = metrics.image_metrics(pred, target)
  assert set(got) == {"psnr", "ssim", "l1"}
  for i in range(n):
    p64, t64 = pred[i].astype(np.float64), target[i].astype(np.float64)
    ref_ssim = structural_similarity(p64, t64, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1, channel_axis=-1)
    ref_psnr = peak_signal_noise_ratio(t64, p64, data_range=1)
    assert abs(float(got["ssim"][i]) - ref_ssim) < 1e-5
    assert abs(float(got["psnr"][i]) - ref_psnr) < 1e-3
    assert abs(float(got["l1"][i]) - np.mean(np.abs(p64 - t64))) < 1e-6


def test_identical_and_shapes():
  _, target = _pairs()
  got = metrics.image_metrics(target, target)
  np.testing.assert_allclose(got["ssim"], 1.0, atol=1e-6)
  assert np.all(np.isinf(got["psnr"])) and np.all(np.asarray(got["l1"]) == 0)
  with pytest.raises(ValueError, match="smaller than"):
    metrics.ssim(target[:, :8, :8], target[:, :8, :8])
  with pytest.raises(ValueError, match="one shape"):
    metrics.psnr(target, target[:, :4])
  with pytest.raises(ValueError, match="accepted: skimage, lama"):
    metrics.ssim(target, target, mode="gauss")


def test_lama_mode_matches_lama_code():
  torch = pytest.importorskip("torch", reason="the LaMa SSIM reference is written in PyTorch")
  import torch.nn.functional as F  # noqa: N812

  pred, target = _pairs(h=37, w=45)

  # LaMa's saicinpainting/evaluation/losses/ssim.py (pytorch-ssim), written out here.
  def lama_ssim(img1, img2, window_size=11):
    channel = img1.shape[1]
    x = torch.arange(window_size, dtype=torch.float64)
    g = torch.exp(-(x - window_size // 2) ** 2 / float(2 * 1.5 ** 2))
    g = (g / g.sum()).float().unsqueeze(1)
    window = g.mm(g.t()).unsqueeze(0).unsqueeze(0).expand(channel, 1, window_size,
                                                          window_size).contiguous()
    conv = lambda z: F.conv2d(z, window, padding=window_size // 2, groups=channel)
    mu1, mu2 = conv(img1), conv(img2)
    s11 = conv(img1 * img1) - mu1 ** 2
    s22 = conv(img2 * img2) - mu2 ** 2
    s12 = conv(img1 * img2) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) *
                                                           (s11 + s22 + c2))
    return ssim_map.mean(1).mean(1).mean(1)

  to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
  ref = lama_ssim(to_t(pred), to_t(target)).numpy()
  got = np.asarray(metrics.ssim(pred, target, mode="lama"))
  np.testing.assert_allclose(got, ref, atol=2e-6)
  # Zero padding changes the statistics near the borders, so the modes differ.
  assert np.all(np.abs(got - np.asarray(metrics.ssim(pred, target))) > 1e-3)
