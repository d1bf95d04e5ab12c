"""The pipeline's per-batch vectorised masks equal today's per-example draws bit for bit."""

from __future__ import annotations

import numpy as np

from inpaint_jax.data import masks as masks_lib
from inpaint_jax.data import pipeline
from tests.helpers import tiny_config


class _PerExample:
  """Hides `sample_many`, so the pipeline falls back to one `sample` call per example."""

  def __init__(self, gen):
    self._gen = gen

  def sample(self, rng, height, width):
    return self._gen.sample(rng, height, width)


def test_vectorised_masks_equal_per_example_masks():
  gen = masks_lib.build(tiny_config("demo").masks)
  rng = np.random.default_rng(0)
  source = [rng.integers(0, 256, (80, 90, 3), dtype=np.uint8) for _ in range(5)]
  kw = dict(image_size=64, global_batch_size=6, seed=3, augment="flip", num_threads=2)
  with pipeline.InpaintBatches(source, gen, **kw) as fast, \
       pipeline.InpaintBatches(source, _PerExample(gen), **kw) as slow:
    for step in (0, 1, 7):
      a, b = fast.batch_at(step), slow.batch_at(step)
      np.testing.assert_array_equal(a["mask"], b["mask"])
      np.testing.assert_array_equal(a["image"], b["image"])
      assert a["mask"].any()
    it = fast.iterate(1)
    np.testing.assert_array_equal(next(it)["mask"], slow.batch_at(1)["mask"])
    it.close()
