"""LaMa's Fourier unit with `fft_impl="matmul"`: the real DFT as matrix products equals jnp.fft.

Odd and even sizes, the DC and Nyquist bins of the inverse, the same parameters in both
implementations, and the refusal of an unknown `fft_impl`. The whole generator against the
PyTorch golden outputs is in `test_golden_lama.py`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models.lama import ffc
from inpaint_jax.models.lama.network import FFCResNetGenerator

SIZES = [(8, 8), (7, 9), (16, 33), (5, 6), (64, 64), (1, 1), (2, 3)]


@pytest.mark.parametrize("h,w", SIZES)
def test_rfft2_matmul_equals_fft(h, w):
  x = np.random.default_rng(h * 100 + w).standard_normal((2, h, w, 3)).astype(np.float32)
  re, im = ffc.rfft2_matmul(jnp.asarray(x))
  z = np.fft.rfft2(x.astype(np.float64), axes=(1, 2), norm="ortho")
  assert re.shape == im.shape == z.shape
  np.testing.assert_allclose(re, z.real, atol=2e-6)
  np.testing.assert_allclose(im, z.imag, atol=2e-6)
  zj = ffc.rfft2(jnp.asarray(x))
  assert float(jnp.max(jnp.abs(re - zj.real))) < 2e-6
  assert float(jnp.max(jnp.abs(im - zj.imag))) < 2e-6


@pytest.mark.parametrize("h,w", SIZES)
def test_irfft2_matmul_equals_fft(h, w):
  rng = np.random.default_rng(h * 100 + w)
  shape = (2, h, w // 2 + 1, 3)
  # Not Hermitian in the DC / Nyquist bins on purpose: irfft2 drops their imaginary parts.
  re, im = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
  y = ffc.irfft2_matmul(jnp.asarray(re), jnp.asarray(im), (h, w))
  ref = np.fft.irfft2(re.astype(np.float64) + 1j * im, s=(h, w), axes=(1, 2), norm="ortho")
  assert y.shape == (2, h, w, 3)
  np.testing.assert_allclose(y, ref, atol=4e-6)
  yj = ffc.irfft2(jax.lax.complex(jnp.asarray(re), jnp.asarray(im)), (h, w))
  assert float(jnp.max(jnp.abs(y - yj))) < 4e-6


def test_fourier_unit_same_params_same_output():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 12, 10, 4)), jnp.float32)
  fft_unit = ffc.FourierUnit(6)
  variables = fft_unit.init(jax.random.PRNGKey(0), x, train=False)
  mm_unit = ffc.FourierUnit(6, fft_impl="matmul")
  assert jax.tree.structure(mm_unit.init(jax.random.PRNGKey(0), x, train=False)) == \
      jax.tree.structure(variables)
  a = fft_unit.apply(variables, x, train=False)
  b = mm_unit.apply(variables, x, train=False)
  assert float(jnp.max(jnp.abs(a - b))) < 1e-5
  with pytest.raises(ValueError, match="generator.fft_impl='dft' is not accepted; accepted: fft, "
                                       "matmul"):
    ffc.FourierUnit(6, fft_impl="dft").apply(variables, x, train=False)


def test_generator_refuses_unknown_fft_impl():
  image, mask = jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 1))
  g = FFCResNetGenerator(ngf=4, n_blocks=1, n_downsampling=2, fft_impl="numpy")
  with pytest.raises(ValueError, match="generator.fft_impl='numpy'"):
    g.init(jax.random.PRNGKey(0), image, mask, train=False)


def test_irfft2_matmul_checks_shape():
  with pytest.raises(ValueError, match="expected"):
    ffc.irfft2_matmul(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 4, 1)), (4, 4))
