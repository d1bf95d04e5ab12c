"""Tests for inpaint_jax.data.augment: the single steps, the sampling, determinism."""

import dataclasses

import numpy as np
import pytest

from inpaint_jax.data import augment, pipeline, sources


class _CornerMasks:
  """A fixed mask (the pipeline's mask stream is not under test here)."""

  def sample(self, rng, height, width):
    mask = np.zeros((height, width), np.float32)
    mask[:height // 2, :width // 2] = 1.0
    return mask


def _noise(h=24, w=32, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _ramp_x(h=48, w=64):
  """(h, w, 3) uint8 whose value is 4 * x in every channel."""
  return np.broadcast_to((4 * np.arange(w, dtype=np.uint8))[None, :, None], (h, w, 3)).copy()


# --- single steps ------------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    lambda im: augment.perspective(im, np.full((4, 2), 0.05)),
    lambda im: augment.affine(im, 1.1, 0.9, 25.0, 0.1, -0.1),
    lambda im: augment.optical_distortion(im, 0.05),
    lambda im: augment.clahe(im, 3.0),
    lambda im: augment.brightness_contrast(im, 1.1, -0.1),
    lambda im: augment.shift_hsv(im, 3.0, -20.0, 4.0),
    augment.hflip,
])
def test_steps_keep_shape_and_dtype_and_change_the_image(op):
  image = _noise()
  before = image.copy()
  out = op(image)
  assert out.shape == image.shape and out.dtype == np.uint8
  assert not np.array_equal(out, image)
  np.testing.assert_array_equal(image, before)  # inputs are never written to


def test_identity_parameters_return_the_input():
  image = _noise()
  for out in (augment.perspective(image, np.zeros((4, 2))), augment.affine(image),
              augment.optical_distortion(image, 0.0), augment.brightness_contrast(image, 1.0, 0.0),
              augment.shift_hsv(image, 0.0, 0.0, 0.0), augment.pad_if_needed(image, 16)):
    np.testing.assert_array_equal(out, image)
  nothing = augment.DistortionParams(None, None, None, (3, 5), False, None, None, None)
  np.testing.assert_array_equal(augment.apply_distortions(image, nothing, 16),
                                image[3:19, 5:21])


def test_hflip_is_an_exact_mirror():
  image = _noise()
  out = augment.hflip(image)
  for x in range(image.shape[1]):
    np.testing.assert_array_equal(out[:, x], image[:, -1 - x])
  flipped = dataclasses.replace(
      augment.DistortionParams(None, None, None, (0, 0), False, None, None, None), flip=True)
  np.testing.assert_array_equal(augment.apply_distortions(image, flipped, 24),
                                image[:, :24][:, ::-1])


def test_affine_turns_about_the_image_centre():
  image = _noise()
  h, w = image.shape[:2]
  matrix = augment.affine_matrix(h, w, 1.2, 0.8, 33.0, 0.1, -0.1)
  centre = np.array([w / 2 - 0.5, h / 2 - 0.5, 1.0])
  np.testing.assert_allclose(matrix @ centre, centre[:2], atol=1e-9)
  # A half turn about the centre of the middle pixel is the point reflection.
  np.testing.assert_array_equal(augment.affine(image, rotate_deg=180.0), image[::-1, ::-1])
  # Scale x alone stretches along x only: a ramp in x keeps its values along y.
  stretched = augment.affine(_ramp_x(), scale_x=1.25).astype(int)
  assert np.ptp(stretched, axis=0).max() == 0


def test_perspective_with_equal_offsets_is_a_zoom_about_the_centre():
  # Moving all four corners inward by d is the zoom x_src = d * W + (1 - 2 d) * x_dst.
  h, w, d = 48, 64, 0.25
  out = augment.perspective(_ramp_x(h, w), np.full((4, 2), d)).astype(float)
  x = np.arange(8, w - 8)
  want = 4 * (d * w + (1 - 2 * d) * x)
  np.testing.assert_allclose(out[h // 2, 8:w - 8, 0], want, atol=2.5)


def test_optical_distortion_keeps_the_centre_and_bends_the_edges():
  image = _ramp_x(63, 63)
  for k in (0.05, -0.05):
    out = augment.optical_distortion(image, k).astype(int)
    # OpenCV's output camera is centred on pixel 31, the distorting one on 31.5 (W / 2):
    # the centre pixel samples x = 31.5, i.e. 4 * 31.5 = 126, as in albumentations.
    assert abs(out[31, 31, 0] - 126) <= 1
    assert not np.array_equal(out[0], image[0])


def test_pad_if_needed_reflects_without_repeating_the_edge():
  image = _noise(10, 12)
  out = augment.pad_if_needed(image, 16)
  assert out.shape == (16, 16, 3)
  np.testing.assert_array_equal(out[3:13, 2:14], image)  # 6 rows: 3 above, 3 below
  np.testing.assert_array_equal(out[2, 2:14], image[1])
  assert augment.distort(image, 16, np.random.default_rng(0)).shape == (16, 16, 3)


def test_brightness_contrast_is_the_clipped_truncated_line():
  levels = np.arange(256, dtype=np.uint8)
  image = np.broadcast_to(levels[None, :, None], (2, 256, 3)).copy()
  out = augment.brightness_contrast(image, 1.15, -0.12)
  want = np.clip(levels * np.float32(1.15) + np.float32(255 * -0.12), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(out[0, :, 0], want)
  assert out.min() == 0 and out.max() == want.max()


def test_shift_hsv_on_gray_and_hue_wraps():
  gray = np.broadcast_to(np.arange(0, 256, 5, dtype=np.uint8)[None, :, None], (2, 52, 3)).copy()
  # Gray has no saturation to shift, and hue does not matter; value moves by trunc(4.5) = 4.
  out = augment.shift_hsv(gray, 3.0, 0.0, 4.5)
  np.testing.assert_array_equal(out, np.clip(gray.astype(int) + 4, 0, 255))
  red = np.zeros((2, 2, 3), np.uint8)
  red[..., 0] = 255
  magenta_ish = augment.shift_hsv(red, -5.0, 0.0, 0.0)  # hue 0 -> 175, past the wrap
  assert magenta_ish[0, 0, 0] == 255 and magenta_ish[0, 0, 1] == 0 and magenta_ish[0, 0, 2] > 0


def test_clahe_raises_local_contrast_and_keeps_gray_gray():
  low = np.random.default_rng(0).integers(100, 116, (64, 64, 1), dtype=np.uint8).repeat(3, -1)
  out = augment.clahe(low, 4.0).astype(int)
  assert out.shape == low.shape and out.std() > 2 * low.std()
  assert np.abs(out - out[..., :1]).max() <= 2


# --- sampling ----------------------------------------------------------------------------
def test_sampling_rates_and_ranges():
  n = 4000
  rng = np.random.default_rng(123)
  draws = [augment.sample_distortions(rng, 40, 50, 20) for _ in range(n)]

  def rate(field):
    return np.mean([getattr(d, field) is not None and getattr(d, field) is not False
                    for d in draws])

  # Each optional step is applied with p = 0.5: 4 standard errors is 0.032.
  for field in ("perspective", "affine", "optical_k", "flip", "clahe_clip",
                "brightness_contrast", "hsv"):
    assert abs(rate(field) - 0.5) < 0.032, field

  offsets = np.stack([d.perspective for d in draws if d.perspective is not None])
  assert offsets.min() >= 0 and offsets.max() < 0.5
  # E|N(0, sigma)| with sigma ~ U(0, 0.06) is 0.03 * sqrt(2 / pi) = 0.0239.
  assert abs(offsets.mean() - 0.0239) < 0.002
  aff = np.array([d.affine for d in draws if d.affine is not None])
  assert aff[:, :2].min() >= 0.7 and aff[:, :2].max() <= 1.3
  assert np.abs(aff[:, 2]).max() <= 40 and abs(np.abs(aff[:, 2]).mean() - 20) < 1.5
  assert np.abs(aff[:, 3:]).max() <= 0.1
  assert abs(np.corrcoef(aff[:, 0], aff[:, 1])[0, 1]) < 0.1  # x and y scales independent
  ks = np.array([d.optical_k for d in draws if d.optical_k is not None])
  assert np.abs(ks).max() <= 0.05 and ks.min() < -0.045 and ks.max() > 0.045
  clips = np.array([d.clahe_clip for d in draws if d.clahe_clip is not None])
  assert clips.min() >= 1 and clips.max() <= 4
  bc = np.array([d.brightness_contrast for d in draws if d.brightness_contrast is not None])
  assert np.abs(bc[:, 0] - 1).max() <= 0.2 and np.abs(bc[:, 1]).max() <= 0.2
  hsv = np.array([d.hsv for d in draws if d.hsv is not None])
  assert (np.abs(hsv).max(axis=0) <= [5, 30, 5]).all()
  ys, xs = np.array([d.crop for d in draws]).T
  assert set(ys) == set(range(21)) and set(xs) == set(range(31))  # every offset, both ends


# --- determinism -------------------------------------------------------------------------
def test_distort_depends_only_on_the_generator_seed():
  image = _noise(40, 48)
  a = augment.distort(image, 32, np.random.default_rng([5, 1, 9]))
  b = augment.distort(image, 32, np.random.default_rng([5, 1, 9]))
  c = augment.distort(image, 32, np.random.default_rng([5, 1, 10]))
  assert a.shape == (32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.fixture(scope="module")
def photos():
  # Small copies of the embedded photos keep the full-image warps cheap.
  src = sources.build_source(None)
  return [np.ascontiguousarray(src[i][::8, ::8]) for i in range(len(src))]


def _batches(src, **kw):
  args = dict(image_size=32, global_batch_size=8, seed=11, augment="distortions")
  args.update(kw)
  return pipeline.InpaintBatches(src, _CornerMasks(), **args)


def test_distortions_batches_are_deterministic(photos):
  with _batches(photos) as a, _batches(photos) as b:
    first = a.batch_at(3)["image"]
    np.testing.assert_array_equal(first, a.batch_at(3)["image"])
    np.testing.assert_array_equal(first, b.batch_at(3)["image"])
    np.testing.assert_array_equal(first[2], b.example(3 * 8 + 2)[0])
  with _batches(photos, augment="flip") as plain:
    assert not np.array_equal(first, plain.batch_at(3)["image"])


def test_distortions_global_batch_is_independent_of_process_count(photos):
  with _batches(photos) as single:
    want = single.batch_at(4)
  parts = []
  for p in range(2):
    with _batches(photos, process_index=p, process_count=2) as b:
      parts.append(b.batch_at(4))
  for key in ("image", "mask"):
    np.testing.assert_array_equal(np.concatenate([x[key] for x in parts]), want[key])
