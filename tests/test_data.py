"""Image sources (embedded, folder, tfds) and the deterministic multi-process pipeline."""

import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

from inpaint_jax.data import pipeline, sources


class RectMasks:
  """Stand-in for `masks.build(cfg)`: one random rectangle hole per mask."""

  def sample(self, rng, height, width):
    mask = np.zeros((height, width), np.float32)
    y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
    h, w = rng.integers(1, height // 2 + 1), rng.integers(1, width // 2 + 1)
    mask[y:y + h, x:x + w] = 1.0
    return mask

  def sample_batch(self, rng, n, height, width):
    return np.stack([self.sample(rng, height, width) for _ in range(n)])


def _noise(rng, h, w, c=3):
  return rng.integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


def _save(path, array, mode=None, fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode).save(path, fmt)


@pytest.fixture
def tree(tmp_path):
  """A folder tree: 5 readable images (one truncated), a corrupt file, a text file."""
  rng = np.random.default_rng(0)
  root = tmp_path / "photos"
  _save(str(root / "a" / "one.png"), _noise(rng, 60, 80))
  _save(str(root / "a" / "b" / "two.JPG"), _noise(rng, 90, 70), fmt="JPEG")
  _save(str(root / "c" / "gray.png"), _noise(rng, 64, 64, c=0))
  _save(str(root / "c" / "rgba.PNG"), _noise(rng, 72, 64, c=4))
  (root / "broken.png").write_bytes(b"this is not a png")
  (root / "notes.txt").write_text("not an image")
  # A JPEG whose header is fine but whose data stops half way: passes the header scan
  # and fails only when decoded.
  buf = io.BytesIO()
  Image.fromarray(_noise(rng, 64, 64)).save(buf, "JPEG")
  (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
  return root


def _folder(root, **kw):
  return sources.build_source({"source": "folder", "folder": str(root), **kw})


# --- embedded ---------------------------------------------------------------------------
def test_embedded_source_loads_real_photos():
  src = sources.build_source(None)  # "embedded" is the default
  assert len(src) >= 5
  assert {os.path.basename(p) for p in src.paths} <= set(sources.EMBEDDED_PHOTOS)
  for i in range(len(src)):
    image = src[i]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    w, h = sources.EMBEDDED_PHOTOS[os.path.basename(src.paths[i])]
    assert image.shape[:2] == (h, w)
    assert min(h, w) >= 256
    # A real photo, not a flat or synthetic image: colour and plenty of texture.
    assert image.std() > 10 and np.abs(image[..., 0].astype(int) - image[..., 2]).mean() > 1


# --- folder -----------------------------------------------------------------------------
def test_folder_source_scans_sorted_and_counts_skips(tree):
  src = _folder(tree)
  rel = [os.path.relpath(p, tree).replace(os.sep, "/") for p in src.paths]
  assert rel == ["a/b/two.JPG", "a/one.png", "c/gray.png", "c/rgba.PNG", "truncated.jpg"]
  assert src.stats["unreadable_at_scan"] == 1  # broken.png
  assert src.stats["ignored_non_image_files"] == 1  # notes.txt
  assert src.sizes[:4] == [(90, 70), (60, 80), (64, 64), (72, 64)]
  for i in range(4):
    image = src[i]
    assert image.dtype == np.uint8 and image.shape == src.sizes[i] + (3,)
  gray = src[2]
  assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])


def test_folder_source_replaces_undecodable_file_with_next(tree):
  src = _folder(tree)
  last = len(src) - 1  # truncated.jpg
  np.testing.assert_array_equal(src[last], src[0])  # wraps to the next record
  assert src.stats["decode_failures"] == 1
  assert src.failed_records == {last}


@pytest.mark.parametrize("make", ["missing", "file", "empty", "no_images"])
def test_folder_source_bad_folder_errors_name_the_field(tmp_path, make):
  path = tmp_path / "data"
  if make == "file":
    path.write_text("x")
  elif make == "empty":
    path.mkdir()
  elif make == "no_images":
    path.mkdir()
    (path / "readme.txt").write_text("x")
  with pytest.raises(ValueError, match="data.folder") as e:
    _folder(path)
  assert str(path) in str(e.value) and ".png" in str(e.value)


def test_folder_source_unset_folder_is_an_error():
  with pytest.raises(ValueError, match="data.folder is not set"):
    sources.build_source({"source": "folder"})


def test_small_image_policies(tree):
  _save(str(tree / "small" / "tiny.png"), _noise(np.random.default_rng(1), 32, 40))
  with pytest.raises(ValueError) as e:
    _folder(tree).require_min_size(48)
  msg = str(e.value)
  for part in ("tiny.png", "40x32", "48x48", "data.small_images", "'skip'", "'resize'"):
    assert part in msg, (part, msg)
  # The pipeline applies the same policy with its image_size.
  with pytest.raises(ValueError, match="tiny.png"):
    pipeline.InpaintBatches(_folder(tree), RectMasks(), image_size=48, global_batch_size=2,
                            seed=0)

  skip = _folder(tree, small_images="skip")
  assert len(skip) == 6
  skip.require_min_size(48)
  assert len(skip) == 5 and skip.stats["small_skipped"] == 1
  assert not any("tiny" in p for p in (skip.describe(i) for i in range(len(skip))))

  resize = sources.build_source(
      {"source": "folder", "folder": str(tree), "small_images": "resize"}, min_size=48)
  tiny = [i for i in range(len(resize)) if "tiny" in resize.describe(i)][0]
  assert resize[tiny].shape == (48, 60, 3)

  with pytest.raises(ValueError, match="data.small_images"):
    _folder(tree, small_images="shrink")


def test_unknown_source_names_the_field():
  with pytest.raises(ValueError, match="data.source.*embedded, folder, tfds"):
    sources.build_source({"source": "imagenet"})


def test_pipeline_on_folder_survives_bad_files(tree):
  src = _folder(tree)
  with pipeline.InpaintBatches(src, RectMasks(), image_size=48, global_batch_size=10,
                               seed=3) as batches:
    batch = batches.batch_at(0)  # 2 epochs of 5 records: touches truncated.jpg twice
  assert batch["image"].shape == (10, 48, 48, 3)
  assert src.stats["decode_failures"] == 2


# --- tfds -------------------------------------------------------------------------------
def test_tfds_source_under_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = {"source": "tfds", "tfds_name": "celeb_a_hq/128", "tfds_split": "train"}
  with tfds.testing.mock_data(num_examples=6):
    src = sources.build_source(cfg)
    assert len(src) == 6
    image = src[5]
    assert image.dtype == np.uint8 and image.shape == (128, 128, 3)
    with pipeline.InpaintBatches(src, RectMasks(), image_size=64, global_batch_size=4,
                                 seed=0) as batches:
      batch = batches.batch_at(1)
    assert batch["image"].shape == (4, 64, 64, 3) and batch["mask"].shape == (4, 64, 64, 1)

    with pytest.raises(ValueError, match="data.tfds_image_key.*image"):
      sources.build_source({**cfg, "tfds_image_key": "picture"})
    # Sizes are unknown before decoding: the policy acts per record.
    with pytest.raises(ValueError, match=r"celeb_a_hq/128\[train\]\[0\] is 128x128"):
      sources.build_source(cfg, min_size=160)[0]
    resized = sources.build_source({**cfg, "small_images": "resize"}, min_size=160)
    assert resized[0].shape == (160, 160, 3)


def test_tfds_source_without_name_names_the_field():
  with pytest.raises(ValueError, match="data.tfds_name"):
    sources.build_source({"source": "tfds"})


# --- pipeline ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photos():
  return sources.build_source(None)


def _batches(src, **kw):
  args = dict(image_size=32, global_batch_size=8, seed=7)
  args.update(kw)
  return pipeline.InpaintBatches(src, RectMasks(), **args)


def test_batch_at_shapes_dtypes_ranges(photos):
  with _batches(photos) as b:
    batch = b.batch_at(0)
  image, mask = batch["image"], batch["mask"]
  assert image.shape == (8, 32, 32, 3) and image.dtype == np.float32
  assert mask.shape == (8, 32, 32, 1) and mask.dtype == np.float32
  assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
  assert set(np.unique(mask)) <= {0.0, 1.0} and 0 < mask.mean() < 1


def test_batches_are_deterministic(photos):
  with _batches(photos) as a, _batches(photos) as b, _batches(photos, seed=8) as c:
    for key in ("image", "mask"):
      np.testing.assert_array_equal(a.batch_at(3)[key], b.batch_at(3)[key])
      assert not np.array_equal(a.batch_at(3)[key], a.batch_at(4)[key])
      assert not np.array_equal(a.batch_at(3)[key], c.batch_at(3)[key])


@pytest.mark.parametrize("process_count", [2, 4])
def test_global_batch_is_independent_of_process_count(photos, process_count):
  with _batches(photos) as single:
    want = single.batch_at(5)
  parts = []
  for p in range(process_count):
    with _batches(photos, process_index=p, process_count=process_count) as b:
      parts.append(b.batch_at(5))
      assert b.local_batch_size == 8 // process_count
  for key in ("image", "mask"):
    np.testing.assert_array_equal(np.concatenate([x[key] for x in parts]), want[key])


def test_each_epoch_visits_every_record_once(photos):
  n = len(photos)
  with _batches(photos, global_batch_size=n) as b:
    for epoch in range(3):
      records = [b.record_of(i) for i in b.local_indices(epoch)]
      assert sorted(records) == list(range(n))
    assert b.permutation(0).tolist() != b.permutation(1).tolist()


def test_flip_off_changes_only_the_flip(photos):
  with _batches(photos, augment="flip") as on, _batches(photos, augment="none") as off:
    a, b = on.batch_at(2), off.batch_at(2)
  np.testing.assert_array_equal(a["mask"], b["mask"])
  for x, y in zip(a["image"], b["image"], strict=True):
    assert np.array_equal(x, y) or np.array_equal(x[:, ::-1], y)
  assert not np.array_equal(a["image"], b["image"])  # 8 fair coins: some flipped


def test_flip_is_the_crop_and_coin_of_the_augment_stream(photos):
  # The draws `flip` has always made: crop offset y, x, then the coin, from [seed, 1, i].
  with _batches(photos) as b:
    got = b.batch_at(1)["image"]
    for row, i in enumerate(b.local_indices(1)):
      image = photos[b.record_of(i)]
      rng = np.random.default_rng([7, 1, i])
      y = rng.integers(0, image.shape[0] - 32 + 1)
      x = rng.integers(0, image.shape[1] - 32 + 1)
      want = image[y:y + 32, x:x + 32]
      if rng.random() < 0.5:
        want = want[:, ::-1]
      np.testing.assert_array_equal(got[row], want / np.float32(255))


def test_unknown_augment_names_the_field(photos):
  with pytest.raises(ValueError, match=r"data\.augment.*accepted: distortions, flip, none"):
    _batches(photos, augment="mixup")


def test_batch_size_must_divide_by_process_count(photos):
  with pytest.raises(ValueError, match="batch_size"):
    _batches(photos, global_batch_size=6, process_count=4)


def _data_threads():
  return [t for t in threading.enumerate() if t.name.startswith("inpaint_data")]


def test_iterate_matches_batch_at_and_resumes(photos):
  with _batches(photos, prefetch=3) as b:
    it = b.iterate(0)
    run = [next(it) for _ in range(5)]
    it.close()
    for step, batch in enumerate(run):
      np.testing.assert_array_equal(batch["image"], b.batch_at(step)["image"])
      np.testing.assert_array_equal(batch["mask"], b.batch_at(step)["mask"])
    with b.iterate(3) as resumed:
      assert resumed.next_step == 3
      for step in (3, 4):
        batch = next(resumed)
        np.testing.assert_array_equal(batch["image"], run[step]["image"])
        np.testing.assert_array_equal(batch["mask"], run[step]["mask"])
      assert resumed.next_step == 5
    b.iterate(10)  # left open on purpose: close() below must stop it
    assert _data_threads()
  assert not _data_threads()
  with pytest.raises(RuntimeError, match="closed"):
    b.batch_at(0)


def test_iterate_raises_worker_errors_in_the_consumer():
  class Broken:
    def __len__(self):
      return 3

    def __getitem__(self, i):
      raise RuntimeError(f"disk on fire at {i}")

  with _batches(Broken(), global_batch_size=2) as b:
    it = b.iterate(0)
    with pytest.raises(RuntimeError, match="disk on fire"):
      next(it)
    assert it.closed
  assert not _data_threads()


def test_shorter_side_resizes_every_image_before_cropping(tmp_path):
  rng = np.random.default_rng(0)
  for name, (h, w) in {"wide.png": (40, 90), "tall.png": (200, 120), "tiny.png": (20, 30)}.items():
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(tmp_path / name)
  # The small-image policy still judges the stored size: a 20x30 photo is not blown up
  # to the shorter side unless data.small_images says so.
  with pytest.raises(ValueError, match=r"tiny.png is 30x20 pixels"):
    sources.build_source({"source": "folder", "folder": str(tmp_path), "shorter_side": 64},
                         min_size=48)
  src = sources.build_source({"source": "folder", "folder": str(tmp_path), "shorter_side": 64,
                              "small_images": "resize"}, min_size=48)
  shapes = sorted(src[i].shape for i in range(len(src)))
  assert shapes == [(64, 96, 3), (64, 144, 3), (107, 64, 3)]
  assert src[0] is src[0]  # kept: the resize runs once per record
  with pytest.raises(ValueError, match=r"data.shorter_side=32: smaller than the 48x48 crop"):
    sources.build_source({"source": "folder", "folder": str(tmp_path), "shorter_side": 32},
                         min_size=48)
  with pytest.raises(ValueError, match=r"data.shorter_side=-1: must be 0"):
    sources.build_source({"source": "folder", "folder": str(tmp_path), "shorter_side": -1})
