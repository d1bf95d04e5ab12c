"""SN-PatchGAN against DeepFill v2's definition: widths, SAME padding on any size, count."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models.discriminators import SNPatchGANDiscriminator, tf_same_padding
from inpaint_jax.models.layers import same_padding
from inpaint_jax.models.spectral_norm import kernel_as_matrix

pytestmark = pytest.mark.usefixtures("fast_compile")


def test_tf_same_padding():
  for size in (8, 10, 64, 256):
    assert tf_same_padding(size, 5, 2) == same_padding(5, 2) == (1, 2)
  assert tf_same_padding(5, 5, 2) == (2, 2) and tf_same_padding(3, 5, 2) == (2, 2)
  assert tf_same_padding(1, 5, 2) == (2, 2)


def test_published_layout_and_odd_sizes_follow_tensorflow():
  d = SNPatchGANDiscriminator()
  shapes = jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((1, 256, 256, 4)),
                                         train=False))
  widths = [shapes["params"][f"conv_{i}"]["layer"]["kernel"].shape for i in range(6)]
  assert widths == [(5, 5, 4, 64), (5, 5, 64, 128)] + [(5, 5, 128, 256)] + [(5, 5, 256, 256)] * 3
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"])) == 5_946_816

  # A 40 x 24 input: every layer gives ceil(size / 2), as TF's SAME does
  # (40 -> 20 -> 10 -> 5 -> 3 -> 2 -> 1, 24 -> 12 -> 6 -> 3 -> 2 -> 1 -> 1).
  small = SNPatchGANDiscriminator(ndf=2)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 40, 24, 4)), jnp.float32)
  variables = small.init(jax.random.key(1), x, train=False)
  scores, feats = small.apply(variables, x, train=False)
  assert [f.shape[1:3] for f in feats] == [(20, 12), (10, 6), (5, 3), (3, 2), (2, 1), (1, 1)]
  assert scores.shape == (1, 1, 1, 8)
  # Layer 4 sees a 5 x 3 map (odd both ways): compare with XLA's own SAME padding.
  conv = variables["params"]["conv_3"]["layer"]
  spec = variables["spectral"]["conv_3"]
  sigma = spec["u"] @ (kernel_as_matrix(conv["kernel"]) @ spec["v"])
  ref = jax.lax.conv_general_dilated(feats[2], conv["kernel"] / sigma, (2, 2), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ref = jax.nn.leaky_relu(ref + conv["bias"], 0.2)
  np.testing.assert_allclose(np.asarray(feats[3]), np.asarray(ref), rtol=1e-5, atol=1e-6)
