"""Sample grids: images as columns, one row per example, under a row of column labels."""

import numpy as np
from PIL import ImageFont

from inpaint_jax import train, writers


def _columns(n=2, size=32, count=4, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.random((n, size, size, 3), dtype=np.float32) for _ in range(count)]


def _has_text(tile: np.ndarray) -> bool:
  return bool((tile < 0.5).any())


def test_labels_add_a_header_and_keep_the_images_below_it():
  columns = _columns()
  plain = writers.image_grid(columns)
  assert plain.shape == (2 * 32, 4 * 32, 3)
  grid = writers.image_grid(columns, ["a", "b", "c", "d"])
  h = writers.LABEL_HEIGHT
  assert grid.shape == (h + 2 * 32, 4 * 32, 3)
  np.testing.assert_array_equal(grid[h:], plain)
  header = grid[:h]
  assert header.min() >= 0.0 and header.max() <= 1.0
  for i in range(4):  # every column has its label, in black on white
    tile = header[:, i * 32:(i + 1) * 32]
    assert _has_text(tile), i
    assert (tile == 1.0).mean() > 0.5, i


def test_a_label_uses_the_first_alternative_that_fits():
  font = ImageFont.load_default()
  long, short = "masked input", "input"
  assert font.getlength(long) > 40 >= font.getlength(short)
  narrow = writers.label_row([(long, short)], 40)
  np.testing.assert_array_equal(narrow, writers.label_row([short], 40))
  wide = writers.label_row([(long, short)], 128)
  np.testing.assert_array_equal(wide, writers.label_row([long], 128))


def test_a_label_too_wide_for_its_column_stays_in_its_column():
  row = writers.label_row(["a very long label indeed", ""], 20)
  assert row.shape == (writers.LABEL_HEIGHT, 40, 3)
  assert _has_text(row[:, :20]) and not _has_text(row[:, 20:])


def _sample_inputs(n=3, size=16, with_d=True):
  rng = np.random.default_rng(1)
  image = rng.random((n, size, size, 3), dtype=np.float32)
  mask = (rng.random((n, size, size, 1)) > 0.5).astype(np.float32)
  out = {"pred": rng.random((n, size, size, 3), dtype=np.float32),
         "composite": rng.random((n, size, size, 3), dtype=np.float32)}
  if with_d:
    out["d_real"] = rng.random((n, size, size, 1), dtype=np.float32)
    out["d_fake"] = rng.random((n, size, size, 1), dtype=np.float32)
  return {"image": image, "mask": mask}, out


def test_training_sample_grid_has_labelled_columns_for_every_view():
  local, out = _sample_inputs()
  grid = train.sample_grid(local, out)
  h = writers.LABEL_HEIGHT
  assert grid.shape == (h + 3 * 16, 6 * 16, 3)
  image, mask = local["image"], local["mask"]
  want = writers.image_grid([image * (1 - mask) + mask, out["pred"], out["composite"], image,
                             np.repeat(out["d_real"], 3, -1), np.repeat(out["d_fake"], 3, -1)])
  np.testing.assert_array_equal(grid[h:], want)
  assert all(_has_text(grid[:h, i * 16:(i + 1) * 16]) for i in range(6))


def test_training_sample_grid_without_a_discriminator_has_four_columns():
  local, out = _sample_inputs(n=6, with_d=False)
  grid = train.sample_grid(local, out)
  assert grid.shape == (writers.LABEL_HEIGHT + 4 * 16, 4 * 16, 3)  # at most 4 examples
