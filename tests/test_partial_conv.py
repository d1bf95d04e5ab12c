"""Partial convolution against a direct NumPy computation of the reference semantics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models.partial_conv import PartialConv, mask_update

pytestmark = pytest.mark.usefixtures("fast_compile")


def _reference(x, mask, kernel, bias, stride, pad, dilation, multi_channel):
  """Window-by-window partial convolution in float64 (NHWC, HWIO), as NVIDIA's code.

  Returns (out, new_mask) with new_mask (N, Ho, Wo, Cout) or (N, Ho, Wo, 1).
  """
  x = np.asarray(x, np.float64)
  mask = np.asarray(mask, np.float64)
  kernel = np.asarray(kernel, np.float64)
  n, h, w, cin = x.shape
  kh, kw, _, cout = kernel.shape
  xm = np.pad(x * mask, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  mp = np.pad(mask, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  ho = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
  wo = (w + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
  win = (cin if multi_channel else 1) * kh * kw
  out = np.zeros((n, ho, wo, cout))
  new = np.zeros((n, ho, wo, 1))
  for i in range(ho):
    for j in range(wo):
      rows = i * stride + dilation * np.arange(kh)
      cols = j * stride + dilation * np.arange(kw)
      patch = xm[:, rows][:, :, cols]  # (n, kh, kw, cin)
      raw = np.einsum("nabc,abco->no", patch, kernel)
      count = mp[:, rows][:, :, cols].sum(axis=(1, 2, 3))
      upd = np.clip(count, 0, 1)
      ratio = win / (count + 1e-8) * upd
      o = raw * ratio[:, None]
      if bias is not None:
        o = (o + np.asarray(bias, np.float64)) * upd[:, None]
      out[:, i, j] = o
      new[:, i, j, 0] = upd
  if multi_channel:
    new = np.broadcast_to(new, out.shape)
  return out, new


def _data(seed, n=2, h=13, w=15, cin=3, multi_channel=True, soft=False):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, h, w, cin)).astype(np.float32)
  c = cin if multi_channel else 1
  if soft:
    mask = rng.random((n, h, w, c)).astype(np.float32) * (rng.random((n, h, w, c)) > 0.4)
  else:
    mask = (rng.random((n, h, w, c)) > 0.6).astype(np.float32)
  mask[:, 1:9, 2:10] = 0.0  # a hole larger than a 7x7 window: counts of 0 appear
  return x, mask


CASES = [  # kernel, stride, pad, dilation, bias, multi_channel
    (3, 1, 1, 1, False, True),
    (7, 2, 3, 1, False, True),
    (4, 2, 1, 1, True, True),
    (3, 1, 2, 2, True, True),
    (3, 1, 1, 1, True, False),
    (5, 2, 2, 1, False, False),
]


@pytest.mark.parametrize("k,stride,pad,dil,bias,multi", CASES)
def test_matches_direct_computation(k, stride, pad, dil, bias, multi):
  x, mask = _data(k + stride, multi_channel=multi)
  layer = PartialConv(5, k, strides=stride, padding=pad, kernel_dilation=dil, use_bias=bias,
                      multi_channel=multi)
  params = jax.jit(layer.init)(jax.random.key(0), x, mask)["params"]
  if bias:
    # PyTorch's default init gives a small bias; make it visible.
    params = {**params, "bias": jnp.linspace(-1.0, 1.0, 5)}
  out, new_mask = jax.jit(layer.apply)({"params": params}, x, mask)
  ref_out, ref_mask = _reference(x, mask, params["kernel"], params.get("bias"), stride, pad,
                                 dil, multi)
  assert out.shape == ref_out.shape and new_mask.shape == ref_mask.shape
  np.testing.assert_allclose(np.asarray(out), ref_out, atol=2e-5, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(new_mask), ref_mask)
  # Holes wider than the window give zero output there, bias or not.
  hole = ref_mask[..., 0] == 0
  assert hole.any() and (np.asarray(out)[hole] == 0).all()


def test_soft_masks_and_border_ratio():
  x, mask = _data(7, soft=True)
  layer = PartialConv(4, 3, padding=1, use_bias=False, multi_channel=True)
  params = layer.init(jax.random.key(1), x, mask)["params"]
  out, new_mask = layer.apply({"params": params}, x, mask)
  ref_out, ref_mask = _reference(x, mask, params["kernel"], None, 1, 1, 1, True)
  np.testing.assert_allclose(np.asarray(out), ref_out, atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(new_mask), ref_mask, atol=1e-7)
  # All-known 16x16 image, k7 s2 p3: the corner output sees 4x4 of the 7x7 taps.
  ratio, new = mask_update(jnp.ones((1, 16, 16, 3)), 7, 2, 3)
  assert ratio.shape == (1, 8, 8, 1) and float(new.min()) == 1.0
  np.testing.assert_allclose(float(ratio[0, 0, 0, 0]), 49 / 16, rtol=1e-6)
  np.testing.assert_allclose(float(ratio[0, 4, 4, 0]), 1.0, rtol=1e-6)


def test_no_mask_means_all_valid_and_gradients():
  x, _ = _data(3, multi_channel=False)
  layer = PartialConv(2, 3, padding=1, multi_channel=False)
  params = layer.init(jax.random.key(2), x)["params"]
  out0, m0 = layer.apply({"params": params}, x)
  out1, m1 = layer.apply({"params": params}, x, jnp.ones(x.shape[:3] + (1,)))
  np.testing.assert_allclose(np.asarray(out0), np.asarray(out1), rtol=1e-6, atol=1e-6)
  assert m0.shape == (2, 13, 15, 1) and float(m0.min()) == 1.0

  # Like the reference, the mask update carries no gradient; x and the kernel get one.
  _, mask = _data(4, multi_channel=False)
  x, mask = jnp.asarray(x), jnp.asarray(mask)
  g_new = jax.grad(lambda m: jnp.sum(layer.apply({"params": params}, x, m)[1]))(mask)
  assert float(jnp.abs(g_new).max()) == 0.0
  gx, gk = jax.grad(lambda x, p: jnp.sum(layer.apply({"params": p}, x, mask)[0] ** 2),
                    argnums=(0, 1))(x, params)
  assert float(jnp.abs(gx).max()) > 0 and float(jnp.abs(gk["kernel"]).max()) > 0
  # Inputs under the hole get no gradient (they are multiplied by 0).
  assert float(jnp.abs(gx[:, 1:9, 2:10]).max()) == 0.0


def test_rejects_a_wrong_mask_shape():
  x, mask = _data(5, multi_channel=True)
  layer = PartialConv(2, 3, padding=1, multi_channel=False)
  with pytest.raises(ValueError, match="mask channel"):
    layer.init(jax.random.key(0), x, mask)
