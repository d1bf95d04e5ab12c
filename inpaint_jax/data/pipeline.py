"""Deterministic per-process (image, mask) batches for multi-host training.

The one property everything here serves: example `g` of the global batch at step `s`
(global index `i = s * global_batch_size + g`) depends only on `(seed, i)`:

* the record: `permutation(epoch)[i % len(source)]`, with `epoch = i // len(source)` and
  a fresh permutation per epoch drawn from `np.random.default_rng([seed, 0, epoch])`;
* the augmentation (crop offset, flip, and for `augment="distortions"` the whole LaMa
  chain of `augment.py`, applied to the full source image before the crop): from
  `np.random.default_rng([seed, 1, i])`;
* the mask: `mask_gen.sample(np.random.default_rng([seed, 2, i]), S, S)`.

(The middle numbers keep the three streams apart.) Process `p` of `n` builds global rows
`[p * B_local, (p + 1) * B_local)` with `B_local = global_batch_size // n`. So the global
batch at a step is the same for any number of processes, and resuming needs only the
step: there is no iterator state to checkpoint. Feed each process's batch to
`jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local)`.

Decoding runs on a thread pool (PIL releases the GIL while decoding), and `iterate`
keeps a few batches in flight ahead of the consumer.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from inpaint_jax.data import augment as _augment_ops  # noqa: F401  (registration)
from inpaint_jax.registry import AUGMENTATIONS

# Stream tags: the first numbers after the seed in each SeedSequence entropy list.
_TAG_PERMUTATION = 0
_TAG_AUGMENT = 1
_TAG_MASK = 2

Batch = dict[str, np.ndarray]


class MaskGenerator(Protocol):
  """What the pipeline needs from `inpaint_jax.data.masks.build(cfg)`."""

  def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One (height, width) float32 mask, 1 = hole. Must be thread-safe (rng is per call)."""
    ...


class InpaintBatches:
  """Random square crops with masks, identical for any process count; see module doc.

  Args:
    source: random access images, `source[r]` -> (H, W, 3) uint8 (an
      `sources.ImageSource`, or any sequence of such arrays). If it has
      `require_min_size`, it is called with `image_size` (the `data.small_images` policy).
    mask_gen: has `sample(rng, height, width) -> (height, width)` float32, 1 = hole.
    image_size: side of the square crops, S.
    global_batch_size: B, the batch over all processes (config `batch_size`).
    seed: data seed; any int (negative ones are taken modulo 2**64).
    process_index: this process, p (`jax.process_index()`).
    process_count: number of processes, n (`jax.process_count()`); must divide B.
    augment: a name in `AUGMENTATIONS` (see `augment.py`): `none` (random crop), `flip`
      (random crop, mirrored with probability 1/2) or `distortions` (LaMa's chain).
    num_threads: decode threads; default min(8, cpu count).
    prefetch: batches `iterate` keeps in flight ahead of the consumer.
  """

  def __init__(self, source: Sequence[np.ndarray], mask_gen: MaskGenerator, *, image_size: int,
               global_batch_size: int, seed: int, process_index: int = 0,
               process_count: int = 1, augment: str = "flip", num_threads: int | None = None,
               prefetch: int = 2):
    if image_size <= 0:
      raise ValueError(f"image_size must be positive, got {image_size}")
    if global_batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {global_batch_size}")
    if process_count <= 0 or not 0 <= process_index < process_count:
      raise ValueError(f"process_index={process_index} must be in [0, process_count="
                       f"{process_count})")
    if global_batch_size % process_count:
      raise ValueError(f"batch_size={global_batch_size} (the global batch) must be divisible by "
                       f"the number of processes ({process_count})")
    if prefetch < 1:
      raise ValueError(f"prefetch must be >= 1, got {prefetch}")
    if hasattr(source, "require_min_size"):
      source.require_min_size(image_size)  # the data.small_images policy
    if len(source) == 0:
      raise ValueError("the data source has no images")
    self.source = source
    self.mask_gen = mask_gen
    self.image_size = int(image_size)
    self.global_batch_size = int(global_batch_size)
    self.local_batch_size = self.global_batch_size // process_count
    self.seed = int(seed) % 2**64  # SeedSequence entropy must be non-negative
    self.process_index = int(process_index)
    self.process_count = int(process_count)
    self.augment = str(augment)
    self._augment = AUGMENTATIONS.get(self.augment, field="data.augment")
    self.num_threads = num_threads or max(1, min(8, os.cpu_count() or 1))
    self.prefetch = int(prefetch)
    self._num_records = len(source)
    self._permutations: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
    self._lock = threading.Lock()
    self._pool: concurrent.futures.ThreadPoolExecutor | None = None
    self._iterators: list[BatchIterator] = []
    self._closed = False

  # --- the deterministic map (seed, i) -> example --------------------------------------
  @property
  def steps_per_epoch(self) -> float:
    """Steps per pass over the source (fractional)."""
    return self._num_records / self.global_batch_size

  def permutation(self, epoch: int) -> np.ndarray:
    """The record order of `epoch`: a permutation of range(len(source))."""
    with self._lock:
      perm = self._permutations.get(epoch)
      if perm is not None:
        self._permutations.move_to_end(epoch)
        return perm
    perm = np.random.default_rng([self.seed, _TAG_PERMUTATION, epoch]).permutation(
        self._num_records)
    with self._lock:
      self._permutations[epoch] = perm
      # A batch spans at most two epochs (more only if B > len(source)), and the
      # prefetched batches are near each other: a few cached epochs suffice.
      while len(self._permutations) > 4:
        self._permutations.popitem(last=False)
    return perm

  def record_of(self, global_index: int) -> int:
    """The source record that global example `global_index` reads."""
    epoch, position = divmod(int(global_index), self._num_records)
    return int(self.permutation(epoch)[position])

  def local_indices(self, step: int) -> np.ndarray:
    """Global example indices of this process's rows at `step`, shape (B_local,)."""
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    first = int(step) * self.global_batch_size + self.process_index * self.local_batch_size
    return first + np.arange(self.local_batch_size, dtype=np.int64)

  def example(self, global_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Global example `global_index`: ((S, S, 3) float32 in [0, 1], (S, S, 1) float32)."""
    image = np.empty((self.image_size, self.image_size, 3), np.float32)
    mask = np.empty((self.image_size, self.image_size, 1), np.float32)
    self._fill(int(global_index), image, mask)
    return image, mask

  def _fill(self, i: int, image_out: np.ndarray, mask_out: np.ndarray) -> None:
    """Writes example `i` into the given (S, S, 3) and (S, S, 1) float32 arrays."""
    s = self.image_size
    record = self.record_of(i)
    image = np.asarray(self.source[record])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f"source record {record}: expected (H, W, 3) uint8, got "
                       f"{image.shape} {image.dtype}")
    h, w = image.shape[:2]
    if h < s or w < s:
      # Sources with a data.small_images policy never get here; plain sequences can.
      raise ValueError(f"source record {record} is {w}x{h} (width x height), smaller than "
                       f"the {s}x{s} crop (image_size={s})")
    crop = self._augment(image, s, np.random.default_rng([self.seed, _TAG_AUGMENT, i]))
    np.divide(crop, np.float32(255.0), out=image_out, dtype=np.float32)
    mask = np.asarray(
        self.mask_gen.sample(np.random.default_rng([self.seed, _TAG_MASK, i]), s, s),
        dtype=np.float32)
    if mask.shape != (s, s):
      raise ValueError(f"mask generator returned shape {mask.shape}, expected {(s, s)}")
    mask_out[..., 0] = mask

  # --- batches ------------------------------------------------------------------------
  def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
    if self._closed:
      raise RuntimeError("InpaintBatches is closed")
    with self._lock:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.num_threads, thread_name_prefix="inpaint_data")
      return self._pool

  def _submit(self, step: int) -> _PendingBatch:
    """Starts building the local batch of `step` on the pool, one task per example."""
    pool = self._executor()
    s, b = self.image_size, self.local_batch_size
    images = np.empty((b, s, s, 3), np.float32)
    masks = np.empty((b, s, s, 1), np.float32)
    futures = [pool.submit(self._fill, int(i), images[row], masks[row])
               for row, i in enumerate(self.local_indices(step))]
    return _PendingBatch(step, {"image": images, "mask": masks}, futures)

  def batch_at(self, step: int) -> Batch:
    """This process's batch at `step`.

    Returns:
      {"image": (B_local, S, S, 3) float32 in [0, 1], "mask": (B_local, S, S, 1) float32,
      1 = hole}.
    """
    return self._submit(step).result()

  def iterate(self, start_step: int = 0) -> BatchIterator:
    """Batches for steps start_step, start_step + 1, ..., built ahead in the background.

    Equal to `batch_at` step by step, so resuming from a checkpoint at step s is
    `iterate(s)`. Close the iterator (or this object) when done.
    """
    if start_step < 0:
      raise ValueError(f"start_step must be >= 0, got {start_step}")
    it = BatchIterator(self, int(start_step))
    with self._lock:
      self._iterators = [x for x in self._iterators if not x.closed] + [it]
    return it

  def close(self) -> None:
    """Stops all iterators and joins the decode threads. Idempotent."""
    with self._lock:
      iterators, self._iterators = self._iterators, []
      pool, self._pool = self._pool, None
      self._closed = True
    for it in iterators:
      it.close()
    if pool is not None:
      pool.shutdown(wait=True, cancel_futures=True)

  def __enter__(self) -> InpaintBatches:
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


class _PendingBatch:
  """A batch whose rows are being filled by pool tasks."""

  def __init__(self, step: int, batch: Batch, futures: list[concurrent.futures.Future]):
    self.step, self.batch, self.futures = step, batch, futures

  def result(self) -> Batch:
    try:
      for f in self.futures:
        f.result()  # re-raises a worker's exception here, in the consumer
    except BaseException:
      self.cancel()
      raise
    return self.batch

  def cancel(self) -> None:
    for f in self.futures:
      f.cancel()


class BatchIterator(Iterator[Batch]):
  """Yields the batches of consecutive steps, keeping `prefetch` batches in flight.

  Attributes:
    next_step: the step of the batch the next `next()` returns (the data position).
  """

  def __init__(self, batches: InpaintBatches, start_step: int):
    self._batches = batches
    self.next_step = start_step
    self._pending: collections.deque[_PendingBatch] = collections.deque()
    self.closed = False

  def _fill_queue(self) -> None:
    while len(self._pending) < self._batches.prefetch:
      step = self.next_step + len(self._pending)
      self._pending.append(self._batches._submit(step))

  def __next__(self) -> Batch:
    if self.closed:
      raise StopIteration
    try:
      self._fill_queue()
      batch = self._pending.popleft().result()
    except BaseException:
      self.close()
      raise
    self.next_step += 1
    self._fill_queue()  # keep the pool busy while the consumer trains on this batch
    return batch

  def close(self) -> None:
    """Cancels the batches in flight. Idempotent."""
    self.closed = True
    while self._pending:
      self._pending.popleft().cancel()

  def __enter__(self) -> BatchIterator:
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

  def __del__(self) -> None:
    self.close()
