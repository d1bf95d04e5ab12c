"""FID as LaMa and pytorch-fid compute it: Inception pool3 features + Frechet distance.

`load(path)` gives the feature function `(N, H, W, 3) in [0, 1] -> (N, 2048)` of
`inpaint_jax.models.inception.FIDInceptionV3` with converted pytorch-fid weights; FID of
two image sets is `frechet.fid_from_features(features(results), features(targets))` in
float64 (`inpaint_jax.metrics.frechet`). The scorer (`inpaint_jax.evaluation.scoring`) collects the
features batch by batch.

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, converted by
`convert_from_torch` (or `python -m inpaint_jax.convert inception`) into an `.npz`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from inpaint_jax.backbones.inception import FIDInceptionV3, variables_from_torch
from inpaint_jax.metrics import frechet
from inpaint_jax.weights import params_file, torch_file

KIND = "fid_inception_v3_pt_2015_12_05"


def convert_from_torch(inception_path: str, output: str) -> str:
  """Reads pytorch-fid's weight file (without torch) and writes the converted `.npz`."""
  params_file.save_params(output, variables_from_torch(torch_file.load_state_dict(
      inception_path)), KIND)
  return output


@functools.partial(jax.jit, static_argnames=("resize_to",))
def _apply(variables, images, resize_to):
  return FIDInceptionV3(resize_to=resize_to).apply(variables, images)


def features(variables: Mapping[str, Any], images: jax.Array,
             resize_to: int | None = 299) -> jax.Array:
  """(N, 2048) pool3 features of (N, H, W, 3) images in [0, 1]."""
  return _apply(variables, images, resize_to)


def load(path: str | os.PathLike[str], resize_to: int | None = 299
         ) -> Callable[[jax.Array], jax.Array]:
  """The feature function `(N, H, W, 3) -> (N, 2048)` with the converted weights at `path`.

  `resize_to`: 299 for FID (pytorch-fid); None feeds the images as they are (>= 75 px).
  """
  variables = jax.device_put(params_file.load_params(path, KIND, what="Inception weights"))
  return functools.partial(features, variables, resize_to=resize_to)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """FID of two (N, 2048) feature sets (float64, as pytorch-fid)."""
  return frechet.fid_from_features(features_a, features_b)
