"""LaMa feature refinement in JAX: the split model, the pyramid ops, and that it refines."""

from __future__ import annotations

import helpers
import jax
import lama_fixtures as lf
import numpy as np
import pytest

from inpaint_jax import system as system_lib
from inpaint_jax.models.lama import refine

jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(scope="module")
def tiny():
  config = helpers.tiny_config()
  g, _ = lf.random_lama_variables(config, seed=3)
  return config, system_lib.build(config).nets["g"], g


def test_front_then_rear_is_the_generator(tiny):
  config, g_model, variables = tiny
  rng = np.random.default_rng(0)
  image = rng.random((1, 32, 48, 3)).astype(np.float32)
  mask = (rng.random((1, 32, 48, 1)) > 0.7).astype(np.float32)
  shape = refine.LamaShape.from_config(config)
  z = jax.jit(refine.front, static_argnums=0)(shape, variables, image, mask)
  got = jax.jit(refine.rear, static_argnums=0)(shape, variables, z)
  want = jax.jit(lambda v, i, m: g_model.apply(v, i, m, train=False)["pred"])(
      variables, image, mask)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_refinement_lowers_known_l1(tiny):
  config, g_model, variables = tiny
  rng = np.random.default_rng(1)
  image = rng.random((64, 64, 3)).astype(np.float32)
  mask = np.zeros((64, 64, 1), np.float32)
  mask[20:44, 16:48] = 1
  res = refine.refine_lama_full(g_model, variables, config, image, mask, n_iters=5,
                                min_side=32)
  assert res.known_l1_after < res.known_l1_before
  assert res.losses[-1] < res.losses[0]
  assert res.composite.shape == (64, 64, 3)
  np.testing.assert_array_equal(res.composite[mask[..., 0] == 0], image[mask[..., 0] == 0])
  assert refine.n_scales(64, 64, 32, 3) == 2 and refine.n_scales(1024, 1024, 512, 3) == 2


def test_pyramid_ops_match_torch():
  torch = pytest.importorskip("torch", reason="torch not installed: reference check skipped")
  rng = np.random.default_rng(2)
  x = rng.random((1, 13, 22, 3)).astype(np.float32)
  t = torch.from_numpy(x).permute(0, 3, 1, 2)
  want = torch.nn.functional.interpolate(t, size=(6, 11), mode="bilinear",
                                         align_corners=False).permute(0, 2, 3, 1).numpy()
  np.testing.assert_allclose(np.asarray(refine.resize_bilinear(x, (6, 11))), want, atol=1e-6)
  g = torch.from_numpy(refine.GAUSS5)
  k = (g[:, None] * g[None, :]).expand(3, 1, 5, 5)
  padded = torch.nn.functional.pad(t, (2, 2, 2, 2), mode="reflect")
  want = torch.nn.functional.conv2d(padded, k, groups=3).permute(0, 2, 3, 1).numpy()
  np.testing.assert_allclose(np.asarray(refine.gaussian_blur5(x)), want, atol=1e-6)
