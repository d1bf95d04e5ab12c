"""The forms the ONNX export traces equal the ones they replace (no jax2onnx needed).

`layers.resize_bilinear` against `jax.image.resize`, `morphology.dilate` against
`reduce_window`, DCF's quarter crops against per-example dynamic slices, and RFR-Net's
unrolled recurrence (`layers.unrolled_loops`) against its `nn.scan`.
"""

from __future__ import annotations

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import system
from inpaint_jax.models import morphology
from inpaint_jax.models.dcf import network as dcf
from inpaint_jax.models.layers import resize_bilinear, unrolled_loops


@pytest.mark.parametrize("hw", [(32, 48), (74, 90), (8, 8), (37, 20), (19, 23), (37, 45)])
def test_resize_bilinear_is_jax_image_resize(hw):
  x = jnp.asarray(np.random.default_rng(0).random((2, 37, 45, 3), dtype=np.float32))
  want = jax.image.resize(x, (2, *hw, 3), "bilinear", antialias=False)
  # Bit-identical under XLA's default optimisation; with it off (the suite's fast compile)
  # the two round differently, by up to 1.7e-6 at 19 x 23.
  np.testing.assert_allclose(resize_bilinear(x, *hw), want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("k", [3, 4, 7])
def test_dilate_erode_equal_reduce_window(k):
  mask = (np.random.default_rng(k).random((2, 13, 11, 1)) > 0.8).astype(np.float32)
  p = k // 2
  want = jax.lax.reduce_window(mask, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, 1, 1, 1),
                               ((0, 0), (p, p), (p, p), (0, 0)))
  np.testing.assert_array_equal(morphology.dilate(jnp.asarray(mask), k), want)
  np.testing.assert_array_equal(morphology.erode(jnp.asarray(mask), k), -jax.lax.reduce_window(
      -mask, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, 1, 1, 1), ((0, 0), (p, p), (p, p), (0, 0))))


@pytest.mark.parametrize("mode", ["official", "fixed"])
def test_quarter_crops_equal_dynamic_slices(mode):
  rng = np.random.default_rng(0)
  n, hf, wf, c = 3, 6, 8, 5
  features = jnp.asarray(rng.standard_normal((n, hf, wf, c)), jnp.float32)
  centres = jnp.asarray([[3.4, 5.2], [0.0, 0.0], [47.0, 63.0]], jnp.float32)
  for scale in (2, 4, 5, 16):
    got = dcf.quarter_crops(features, centres, jnp.int32(scale), (48, 64), mode)
    # The former form: crops of the zero-padded map by per-example dynamic slices.
    cy, cx = centres[:, 0], centres[:, 1]
    if mode == "official":
      side = jnp.minimum(scale, min(hf, wf))
    else:
      side = jnp.clip(jnp.minimum(scale * hf // 48, scale * wf // 64), 1, min(hf, wf))
      cy, cx = cy * (hf / 48), cx * (wf / 64)
    s = side.astype(jnp.float32)
    ya = jnp.maximum(0, jnp.floor(cy - s).astype(jnp.int32))
    xa = jnp.maximum(0, jnp.floor(cx - s).astype(jnp.int32))
    yb = jnp.minimum(hf - side, jnp.floor(cy).astype(jnp.int32))
    xb = jnp.minimum(wf - side, jnp.floor(cx).astype(jnp.int32))
    ys = jnp.minimum(jnp.stack([ya, ya, yb, yb], 1), hf)
    xs = jnp.minimum(jnp.stack([xa, xb, xa, xb], 1), wf)
    padded = jnp.pad(features, ((0, 0), (0, hf), (0, wf), (0, 0)))
    crops = jnp.stack([jnp.stack([jax.lax.dynamic_slice(
        padded[i], (ys[i, q], xs[i, q], 0), (hf, wf, c)) for q in range(4)]) for i in range(n)])
    want = jnp.einsum("ih,nqhwc,jw->nqijc", dcf._resize_matrix(side, hf), crops,
                      dcf._resize_matrix(side, wf), precision=jax.lax.Precision.HIGHEST)
    np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"scale {scale}")


@pytest.mark.usefixtures("fast_compile")
def test_rfr_unrolled_recurrence_equals_scan():
  config = helpers.config_module("rfr").get_config("tiny")
  g = system.build(config).nets["g"]
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.random((2, 32, 32, 3)), jnp.float32)
  mask = np.zeros((2, 32, 32, 1), np.float32)
  mask[0, 8:20, 4:16] = 1
  mask[1, 20:30, 10:30] = 1
  variables = g.init({"params": jax.random.PRNGKey(0)}, image, mask, train=False)
  want = g.apply(variables, image, mask, train=False)["pred"]
  with unrolled_loops():
    got = g.apply(variables, image, mask, train=False)["pred"]
  np.testing.assert_allclose(got, want, atol=1e-6)
