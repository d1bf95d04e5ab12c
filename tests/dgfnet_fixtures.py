"""The coarse branch DGFNet tests build: a tiny RFR-Net, or a stand-in before `rfr` exists.

The stand-in has RFR-Net's interface (image, mask 1 = hole, `return_features`, the
`features` h1 / h2 / h4 / h8 / h16), nothing more; it exists only for these tests.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from inpaint_jax import models  # noqa: F401  (registers the generators)
from inpaint_jax.registry import GENERATORS

STAND_IN = "dgfnet_test_coarse"


class StandInCoarse(nn.Module):
  width: int = 4
  return_features: bool = False

  @nn.compact
  def __call__(self, image, mask, *, train):
    del train
    x = jnp.concatenate([image * (1.0 - mask), mask], axis=-1)
    h1 = nn.relu(nn.Conv(self.width, (3, 3))(x))
    feats, h = {"h1": h1}, h1
    for key in ("h2", "h4", "h8", "h16"):
      h = nn.relu(nn.Conv(self.width, (3, 3), strides=2)(h))
      feats[key] = h
    out = {"pred": nn.Conv(3, (3, 3))(h1)}
    if self.return_features:
      out["features"] = feats
    return out


if STAND_IN not in GENERATORS:
  GENERATORS.register(STAND_IN)(StandInCoarse)

HAVE_RFR = "rfr" in GENERATORS
# The tiny RFR-Net of configs/dgfnet.py:tiny, or the stand-in.
TINY_COARSE = (dict(name="rfr", rec_ksize=3, n_rec=1, ngf=4, tail_ch=4, layer_size=4)
               if HAVE_RFR else dict(name=STAND_IN))
