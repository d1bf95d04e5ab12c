"""LaMa mask generators: format, determinism, LaMa's statistics, geometry, config."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from inpaint_jax.data import masks, raster
from inpaint_jax.registry import MASK_GENERATORS
from tests import helpers

EVAL_PRESETS = [f"lama_{w}_{s}" for s in (256, 512) for w in ("thin", "medium", "thick")]
KINDS = ["lama_mixed", "lama_irregular", "lama_box"]


def _brute_force(seg: raster.Segments, n: int, height: int, width: int) -> np.ndarray:
  """The rasteriser's pixel model, pixel by pixel: discs of radius r = ceil(t / 2) at the
  end points, plus the rectangle of half-width r + 0.5 along the segment."""
  yy, xx = np.mgrid[:height, :width].astype(np.float64)
  out = np.zeros((n, height, width), bool)
  for m, x0, y0, x1, y1, t in zip(seg.mask, seg.x0, seg.y0, seg.x1, seg.y1, seg.thickness,
                                  strict=True):
    r = (t + 1) // 2
    hit = ((xx - x0) ** 2 + (yy - y0) ** 2 <= r * r) | ((xx - x1) ** 2 + (yy - y1) ** 2 <= r * r)
    length = np.hypot(x1 - x0, y1 - y0)
    if length > 0:
      along = ((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / length
      across = ((xx - x0) * (y1 - y0) - (yy - y0) * (x1 - x0)) / length
      hit |= (along >= 0) & (along <= length) & (np.abs(across) <= r + 0.5)
    out[m] |= hit
  return out


@pytest.mark.parametrize("kind", KINDS)
def test_masks_are_binary_float32_with_the_right_shape(kind):
  gen = masks.build({"kind": kind})
  batch = gen.sample_batch(np.random.default_rng(0), 6, 96, 128)
  assert batch.shape == (6, 96, 128) and batch.dtype == np.float32
  assert set(np.unique(batch)) <= {0.0, 1.0}
  assert batch.reshape(6, -1).max(axis=1).min() == 1.0  # every mask has a hole
  one = gen.sample(np.random.default_rng(0), 96, 128)
  assert one.shape == (96, 128) and one.dtype == np.float32
  assert gen.sample_batch(np.random.default_rng(0), 0, 96, 128).shape == (0, 96, 128)


def test_same_seed_same_masks_other_seed_other_masks():
  gen = masks.build({"kind": "lama_mixed"})
  a = gen.sample_batch(np.random.default_rng(7), 16, 256, 256)
  b = gen.sample_batch(np.random.default_rng(7), 16, 256, 256)
  c = gen.sample_batch(np.random.default_rng(8), 16, 256, 256)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert len({m.tobytes() for m in a}) == 16  # masks of one batch differ too


def test_batch_many_and_single_draws_agree():
  gen = masks.build({"kind": "lama_mixed"})
  batch = gen.sample_batch(np.random.default_rng(3), 12, 80, 72)
  rng = np.random.default_rng(3)
  singles = np.stack([gen.sample(rng, 80, 72) for _ in range(12)])
  np.testing.assert_array_equal(batch, singles)  # mask i = the i-th successive sample
  many = gen.sample_many([np.random.default_rng([5, i]) for i in range(12)], 80, 72)
  alone = np.stack([gen.sample(np.random.default_rng([5, i]), 80, 72) for i in range(12)])
  np.testing.assert_array_equal(many, alone)
  buffer = np.full((12, 80, 72), 7.0, np.float32)  # `out`: filled in place, all of it
  assert gen.sample_batch(np.random.default_rng(3), 12, 80, 72, out=buffer) is buffer
  np.testing.assert_array_equal(buffer, batch)
  with pytest.raises(ValueError, match="out must be a float32 array of shape"):
    gen.sample_batch(np.random.default_rng(3), 12, 80, 72, out=buffer[:, :, :70])


def test_mean_hole_fraction_matches_lama():
  # Official cv2 generator: 0.354 over 2,000 masks (0.3529 +- 0.0010 over 40,000).
  gen = masks.build({"kind": "lama_mixed"})
  rng = np.random.default_rng(0)
  # 8 x 250 from one generator = the same 2,000 masks as one call, without 0.5 GB at once.
  fraction = np.mean([gen.sample_batch(rng, 250, 256, 256).mean() for _ in range(8)])
  assert abs(fraction - 0.354) < 0.01


def test_boxes_respect_margins_and_sizes():
  gen = masks.build({"kind": "lama_box"})
  n, h, w = 3000, 256, 200
  _, seg, boxes = gen.sample_primitives([np.random.default_rng(1)] * n, h, w)
  assert seg.mask.size == 0
  counts = np.bincount(boxes.mask, minlength=n)
  np.testing.assert_array_equal(counts, boxes.boxes_per_mask)
  assert counts.min() == 1 and counts.max() == 4
  for side in (boxes.w, boxes.h):  # LaMa's wrapper makes bbox_max_size (150) reachable
    assert side.min() == 30 and side.max() == 150
  assert boxes.x.min() >= 10 and (boxes.x + boxes.w).max() <= w - 10
  assert boxes.y.min() >= 10 and (boxes.y + boxes.h).max() <= h - 10
  # Boxes are drawn exactly, and nothing lands in the margins.
  drawn = raster.rasterize(200, h, w, None, dataclasses.replace(
      boxes, **{f: getattr(boxes, f)[boxes.mask < 200] for f in ("mask", "x", "y", "w", "h")}))
  want = np.zeros((200, h, w), np.float32)
  for m, x, y, bw, bh in zip(boxes.mask, boxes.x, boxes.y, boxes.w, boxes.h, strict=True):
    if m < 200:
      want[m, y:y + bh, x:x + bw] = 1
  np.testing.assert_array_equal(drawn, want)
  assert drawn[:, :10].max() == drawn[:, -10:].max() == 0
  assert drawn[:, :, :10].max() == drawn[:, :, -10:].max() == 0
  # The size bound shrinks with the image (H - 2 * margin), as in LaMa.
  small = masks.BoxMaskParams()
  assert small.size_bound(64, 300) == 44


def test_stroke_count_has_lamas_off_by_one():
  gen = masks.build({"kind": "lama_irregular"})
  n = 3000
  is_irregular, seg, _ = gen.sample_primitives([np.random.default_rng(2)] * n, 256, 256)
  assert is_irregular.all()
  strokes = seg.strokes_per_mask
  assert gen.irregular.max_times == 5 and gen.irregular.stroke_count_range == (1, 6)
  assert set(np.unique(strokes)) == {1, 2, 3, 4, 5, 6}  # 6: one more than configured
  np.testing.assert_allclose(np.bincount(strokes)[1:] / n, 1 / 6, atol=0.03)
  assert set(np.unique(seg.segments_per_stroke)) == {1, 2, 3, 4, 5}
  assert seg.thickness.min() == 5 and seg.thickness.max() == 104
  np.testing.assert_array_equal(np.bincount(seg.mask, minlength=n),
                                np.add.reduceat(seg.segments_per_stroke,
                                                np.cumsum(strokes) - strokes))
  for x, y, hi in ((seg.x0, seg.y0, 256), (seg.x1, seg.y1, 256)):
    assert x.min() >= 0 and x.max() <= hi and y.min() >= 0 and y.max() <= hi
  assert seg.x1.max() == 256  # end points are clipped to W, one past the last pixel
  # Consecutive segments of a stroke chain: each starts where the previous one ended.
  first = np.cumsum(seg.segments_per_stroke) - seg.segments_per_stroke
  chained = np.setdiff1d(np.arange(seg.mask.size), first)
  np.testing.assert_array_equal(seg.x0[chained], seg.x1[chained - 1])
  np.testing.assert_array_equal(seg.y0[chained], seg.y1[chained - 1])
  # Segment directions: (sin, cos) of 0.01 + k or 2 * 3.1415926 - (0.01 + k).
  length = np.hypot(seg.x1 - seg.x0, seg.y1 - seg.y0)
  assert length.max() <= 210


@pytest.mark.parametrize("height,width", [(96, 160), (160, 96), (33, 301)])
def test_rasteriser_matches_the_pixel_model_on_non_square_images(height, width):
  gen = masks.build({"kind": "lama_irregular", "irregular.max_width": 30})
  n = 12
  _, seg, boxes = gen.sample_primitives([np.random.default_rng(height)] * n, height, width)
  got = raster.rasterize(n, height, width, seg, boxes)
  want = _brute_force(seg, n, height, width)
  # Only pixel centres exactly on a boundary may differ (float32 arithmetic).
  assert np.mean(got != want) < 1e-3
  assert abs(got.mean() - want.mean()) < 1e-3
  np.testing.assert_array_equal(gen.sample_batch(np.random.default_rng(height), n, height,
                                                 width), got)


def test_more_primitives_than_the_uint8_counter():
  # 256 copies of one box: coverage 256 wraps to 0 modulo 2**8, so a wider counter is used.
  k = 256
  boxes = raster.Boxes(np.zeros(k, np.int64), np.full(k, 3), np.full(k, 2), np.full(k, 5),
                      np.full(k, 4), np.array([k]))
  got = raster.rasterize(1, 10, 12, None, boxes)[0]
  want = np.zeros((10, 12), np.float32)
  want[2:6, 3:8] = 1
  np.testing.assert_array_equal(got, want)


def test_build_overrides_from_mapping_dotted_keys_and_configdict():
  gen = masks.build({"kind": "lama_mixed", "irregular_prob": 1.0, "box_prob": 0.0,
                     "irregular.max_width": 50, "box": {"margin": 0}})
  assert gen.p_irregular == 1.0 and gen.irregular.max_width == 50 and gen.box.margin == 0
  assert gen.irregular.max_len == 200  # untouched fields keep the preset
  cfg = ml_collections.ConfigDict({"kind": "lama_mixed", "irregular": {"max_times": 3}})
  assert masks.build(cfg).irregular.max_times == 3
  assert masks.build({"kind": "lama_mixed"}) == masks.MixedMaskGenerator()


@pytest.mark.parametrize("cfg,match", [
    ({"kind": "lama_nope"}, r"masks\.kind.*lama_nope.*accepted:.*lama_mixed"),
    ({}, r"masks\.kind is missing.*lama_mixed"),
    ({"kind": "lama_mixed", "max_width": 3}, r"masks\.max_width: unknown.*irregular_prob"),
    ({"kind": "lama_mixed", "irregular.width": 3}, r"masks\.irregular\.width.*max_width"),
    ({"kind": "lama_mixed", "box": {"size": 3}}, r"masks\.box\.size.*bbox_min_size"),
    ({"kind": "lama_mixed", "irregular.max_width": 0}, r"masks\.irregular\.max_width.*>= 1"),
    ({"kind": "lama_mixed", "irregular.max_len": 2.5}, r"masks\.irregular\.max_len.*int"),
    ({"kind": "lama_mixed", "box.bbox_max_size": 20}, r"masks\.box\.bbox_max_size"),
    ({"kind": "lama_mixed", "box_prob": -1}, r"masks\.box_prob"),
    ({"kind": "lama_mixed", "irregular_prob": 0, "box_prob": 0}, r"must be > 0"),
    ({"kind": "lama_mixed", "irregular": 3}, r"masks\.irregular must be a mapping"),
])
def test_build_errors_name_the_field(cfg, match):
  with pytest.raises(ValueError, match=match):
    masks.build(cfg)


def test_boxes_that_cannot_fit_raise():
  gen = masks.build({"kind": "lama_mixed"})
  with pytest.raises(ValueError, match="do not fit a 40x200"):
    gen.sample(np.random.default_rng(0), 40, 200)  # 40 - 2 * 10 <= bbox_min_size
  # Without boxes the same size is fine.
  masks.build({"kind": "lama_irregular"}).sample(np.random.default_rng(0), 40, 200)


def test_kinds_and_eval_presets_are_registered_and_sample():
  for kind in KINDS + EVAL_PRESETS:
    assert kind in MASK_GENERATORS
    gen = masks.build({"kind": kind})
    size = 512 if kind.endswith("512") else 256
    batch = gen.sample_batch(np.random.default_rng(0), 3, size, size)
    assert batch.shape == (3, size, size) and 0 < batch.mean() < 1
  medium = masks.build({"kind": "lama_medium_256"})
  assert medium.p_irregular == pytest.approx(1 / 1.3)
  assert medium.irregular == masks.IrregularMaskParams(max_len=100, max_width=50, min_times=4,
                                                       max_times=5)
  assert medium.box == masks.BoxMaskParams(margin=0, bbox_min_size=10, bbox_max_size=50,
                                           min_times=1, max_times=5)
  assert masks.build({"kind": "lama_thin_512"}).p_irregular == 1.0
  assert masks.build({"kind": "lama_thick_512"}).irregular.max_width == 250


def test_config_preset_name_selects_its_own_parameters():
  for kind in ("lama_thin_256", "lama_medium_512", "lama_thick_256"):
    config = helpers.tiny_config("fourier")
    config.masks.kind = kind
    assert masks.build(config.masks) == MASK_GENERATORS.get(kind)()
    # The demo's scale applies to whichever preset is chosen.
    demo = helpers.tiny_config("demo")
    demo.masks.kind = kind
    assert masks.build(demo.masks) == masks.scaled(MASK_GENERATORS.get(kind)(), 0.25)
  # Explicit overrides still win over the preset.
  config = helpers.tiny_config("fourier")
  config.masks.kind = "lama_thin_256"
  config.masks.irregular.max_width = 33
  gen = masks.build(config.masks)
  assert gen.irregular.max_width == 33 and gen.irregular.max_len == 40


def test_scale_multiplies_pixel_sizes_only():
  gen = masks.scaled(MASK_GENERATORS.get("lama_mixed")(), 0.25)
  assert (gen.irregular.max_len, gen.irregular.max_width) == (50, 25)
  assert (gen.box.margin, gen.box.bbox_min_size, gen.box.bbox_max_size) == (3, 8, 38)
  assert (gen.irregular.max_times, gen.box.max_times, gen.irregular.max_angle) == (5, 4, 4)
