"""Speed and fidelity of the LaMa mask generators (`inpaint_jax.data.masks`), one CPU core.

  python -m inpaint_jax.data.masks_bench [--n 4000] [--size 256] [--kind lama_mixed]
      [--batch 64] [--compare]

Reports masks/s of `sample_batch` (in batches of --batch; fresh output arrays, then one
reused `out=` array), of `sample_many` (a new `default_rng([seed, i])` per mask, as a
data pipeline that seeds examples separately would call it) and of `sample` (one mask
per call), and the mean hole fraction. If `cv2` is importable (opencv-python-headless; a dev-time
tool, never a dependency of the package) it also times `lama_reference`, a faithful
copy of the official LaMa code, on the same settings. `--compare` adds the fidelity
checks quoted in the `masks` module docstring: mean/std hole fraction of ours vs the
reference for the training kinds and the eval presets, and the per-pixel agreement of
our rasteriser with `cv2.line` on the same segments.

The process pins itself to core 0 and asks BLAS/OpenMP for one thread (numpy's
element-wise work is single-threaded anyway).
"""

from __future__ import annotations

import os

# Before numpy is imported: one thread for any BLAS/OpenMP pool (set in the environment,
# so this only works here, at the top of the entry point).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
  os.environ.setdefault(_var, "1")

import importlib.util  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from inpaint_jax import errors  # noqa: E402
from inpaint_jax.data import masks  # noqa: E402


# ------------------------------------------------------------------------------------------
# The official generator (advimman/lama saicinpainting/training/data/masks.py), copied
# for reference: same draws in the same order, with a RandomState in place of np.random.
# ------------------------------------------------------------------------------------------
def _lama_irregular(rs: np.random.RandomState, shape: tuple[int, int],
                    p: masks.IrregularMaskParams, segments: list | None = None) -> np.ndarray:
  """`RandomIrregularMaskGenerator.__call__` + `make_random_irregular_mask` (LINE)."""
  import cv2  # pylint: disable=g-import-not-at-top

  height, width = shape
  mask = np.zeros((height, width), np.float32)
  # The wrapper (ramp coefficient 1): the source of the off-by-one stroke count.
  max_times = int(p.min_times + 1 + (p.max_times - p.min_times) * 1)
  times = rs.randint(p.min_times, max_times + 1)
  for i in range(times):
    start_x = rs.randint(width)
    start_y = rs.randint(height)
    for _ in range(1 + rs.randint(5)):
      angle = 0.01 + rs.randint(p.max_angle)
      if i % 2 == 0:
        angle = 2 * 3.1415926 - angle
      length = 10 + rs.randint(p.max_len)
      brush_w = 5 + rs.randint(p.max_width)
      end_x = np.clip((start_x + length * np.sin(angle)).astype(np.int32), 0, width)
      end_y = np.clip((start_y + length * np.cos(angle)).astype(np.int32), 0, height)
      cv2.line(mask, (start_x, start_y), (end_x, end_y), 1.0, brush_w)
      if segments is not None:
        segments.append((int(start_x), int(start_y), int(end_x), int(end_y), brush_w))
      start_x, start_y = end_x, end_y
  return mask


def _lama_box(rs: np.random.RandomState, shape: tuple[int, int],
              p: masks.BoxMaskParams) -> np.ndarray:
  """`RandomRectangleMaskGenerator.__call__` + `make_random_rectangle_mask`."""
  height, width = shape
  mask = np.zeros((height, width), np.float32)
  bbox_max_size = int(p.bbox_min_size + 1 + (p.bbox_max_size - p.bbox_min_size) * 1)
  max_times = int(p.min_times + (p.max_times - p.min_times) * 1)
  bbox_max_size = min(bbox_max_size, height - p.margin * 2, width - p.margin * 2)
  times = rs.randint(p.min_times, max_times + 1)
  for _ in range(times):
    box_width = rs.randint(p.bbox_min_size, bbox_max_size)
    box_height = rs.randint(p.bbox_min_size, bbox_max_size)
    start_x = rs.randint(p.margin, width - p.margin - box_width + 1)
    start_y = rs.randint(p.margin, height - p.margin - box_height + 1)
    mask[start_y:start_y + box_height, start_x:start_x + box_width] = 1
  return mask


def lama_reference(gen: masks.MixedMaskGenerator) -> Callable[..., np.ndarray]:
  """The official `MixedMaskGenerator` with `gen`'s settings, as f(rs, height, width).

  Needs cv2. Kinds with weight 0 are left out as LaMa does; the weights are normalised
  in float32 and the kind drawn with `rs.choice`, as in LaMa.
  """
  gens, probas = [], []
  if gen.irregular_prob > 0:
    gens.append(lambda rs, shape: _lama_irregular(rs, shape, gen.irregular))
    probas.append(gen.irregular_prob)
  if gen.box_prob > 0:
    gens.append(lambda rs, shape: _lama_box(rs, shape, gen.box))
    probas.append(gen.box_prob)
  probas = np.array(probas, dtype="float32")
  probas /= probas.sum()

  def sample(rs: np.random.RandomState, height: int, width: int) -> np.ndarray:
    kind = rs.choice(len(probas), p=probas)
    return gens[kind](rs, (height, width))

  return sample


# ------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------
def _rate(fn: Callable[[], int], repeats: int = 3) -> float:
  """Best-of-`repeats` masks/s of fn(), which returns the number of masks it made."""
  best = 0.0
  for _ in range(repeats):
    t = time.perf_counter()
    count = fn()
    best = max(best, count / (time.perf_counter() - t))
  return best


def _fractions_ours(gen: masks.MixedMaskGenerator, n: int, size: int, seed: int,
                    batch: int = 64) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return np.concatenate([gen.sample_batch(rng, min(batch, n - i), size, size).mean(axis=(1, 2))
                         for i in range(0, n, batch)])


def _fractions_ref(gen: masks.MixedMaskGenerator, n: int, size: int, seed: int) -> np.ndarray:
  ref, rs = lama_reference(gen), np.random.RandomState(seed)
  return np.array([ref(rs, size, size).mean() for _ in range(n)])


def _draw_one_mask(size: int, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray,
                   y1: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Our (size, size) drawing of the k segments given as (k,) int64 arrays, one stroke each."""
  k = len(x0)
  seg = masks.Segments(np.zeros(k, np.int64), x0, y0, x1, y1, t, np.array([k]),
                       np.ones(k, np.int64))
  return masks.rasterize(1, size, size, seg)[0]


def _pixel_agreement(n: int, size: int, seed: int) -> tuple[float, float, float]:
  """Ours vs cv2.line on the segments of `n` official irregular masks.

  Returns:
    (extra, missing, mismatch): pixels we set that cv2 does not and pixels cv2 sets
    that we do not, each as a fraction of cv2's stroke pixels summed segment by
    segment; and the fraction of all mask pixels that differ, whole masks compared.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  params, rs = masks.IrregularMaskParams(), np.random.RandomState(seed)
  extra = missing = total = differ = 0
  for _ in range(n):
    segs: list = []
    theirs = _lama_irregular(rs, (size, size), params, segs)
    x0, y0, x1, y1, t = (np.array(c, np.int64) for c in zip(*segs, strict=True))
    ours = _draw_one_mask(size, x0, y0, x1, y1, t)
    differ += int((ours != theirs).sum())
    for i in range(len(segs)):
      a = np.zeros((size, size), np.float32)
      cv2.line(a, (int(x0[i]), int(y0[i])), (int(x1[i]), int(y1[i])), 1.0, int(t[i]))
      b = _draw_one_mask(size, *(c[i:i + 1] for c in (x0, y0, x1, y1, t)))
      extra += int(((b > 0) & (a == 0)).sum())
      missing += int(((b == 0) & (a > 0)).sum())
      total += int(a.sum())
  return extra / total, missing / total, differ / (n * size * size)


def compare(n: int, size: int, seed: int) -> None:
  """Prints the fidelity table: ours vs the cv2 reference (needs cv2)."""
  extra, missing, mismatch = _pixel_agreement(min(n, 500), size, seed)
  print(f"\nper pixel, same segments ({min(n, 500)} irregular masks at {size}x{size}): "
        f"extra {extra:.3%}, missing {missing:.3%} of cv2's stroke pixels; "
        f"whole masks differ in {mismatch:.3%} of pixels")
  cases = [(k, size) for k in ("lama_mixed", "lama_irregular", "lama_box")]
  cases += [(f"lama_{w}_{s}", s) for s in (256, 512) for w in ("thin", "medium", "thick")]
  print(f"\nhole fraction, mean (std) over n masks; n = {n} at the training size, n/4 at "
        "512\n  kind               size   ours              cv2 reference     diff of means")
  for kind, sz in cases:
    gen = masks.build({"kind": kind})
    m = n if sz <= 256 else max(1, n // 4)
    ours = _fractions_ours(gen, m, sz, seed)
    ref = _fractions_ref(gen, m, sz, seed)
    se = np.hypot(ours.std() / np.sqrt(m), ref.std() / np.sqrt(m))
    print(f"  {kind:17s}  {sz:4d}   {ours.mean():.4f} ({ours.std():.4f})   "
          f"{ref.mean():.4f} ({ref.std():.4f})   {ours.mean() - ref.mean():+.4f} "
          f"(s.e. {se:.4f}), n={m}")


def main(argv: list[str] | None = None) -> None:
  parser = errors.ArgumentParser(
      "python -m inpaint_jax.data.masks_bench",
      "Speed (masks/s on one CPU core) and hole fractions of the LaMa training mask "
      "generators, against the official cv2 code when cv2 is importable.",
      epilog="example:\n  python -m inpaint_jax.data.masks_bench --n 20000 --kind lama_mixed")
  parser.add_argument("--n", type=int, default=4000, metavar="N", help="masks per measurement")
  parser.add_argument("--size", type=int, default=256, metavar="S", help="square mask side")
  parser.add_argument("--kind", default="lama_mixed", metavar="NAME",
                      help="registered mask generator")
  parser.add_argument("--batch", type=int, default=64, metavar="N",
                      help="masks per sample_batch call")
  parser.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the draws")
  parser.add_argument("--compare", action="store_true",
                      help="fidelity vs the cv2 reference (slow: minutes)")
  args = parser.parse_args(argv)

  if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
  n, size = args.n, args.size
  try:
    with errors.as_user_errors():
      gen = masks.build({"kind": args.kind})
  except errors.UserError as e:
    errors.exit_with(f"--kind {args.kind}: {e}")
  print(f"{args.kind}, {size}x{size}, one core (pid affinity "
        f"{sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})")

  rng = np.random.default_rng(args.seed)
  gen.sample_batch(rng, min(n, args.batch), size, size)  # warm-up

  def run_batch() -> int:
    for i in range(0, n, args.batch):
      gen.sample_batch(rng, min(args.batch, n - i), size, size)
    return n

  buffer = np.empty((args.batch, size, size), np.float32)

  def run_batch_out() -> int:
    for i in range(0, n, args.batch):
      k = min(args.batch, n - i)
      gen.sample_batch(rng, k, size, size, out=buffer[:k])
    return n

  def run_many() -> int:
    for i in range(0, n, args.batch):
      rngs = [np.random.default_rng([args.seed, j]) for j in range(i, min(n, i + args.batch))]
      gen.sample_many(rngs, size, size)
    return n

  n_single = min(n, 1000)

  def run_single() -> int:
    for _ in range(n_single):
      gen.sample(rng, size, size)
    return n_single

  rate_batch = _rate(run_batch)
  frac = _fractions_ours(gen, n, size, args.seed, args.batch)  # not timed
  print(f"  ours sample_batch, batches of {args.batch:<4d}          {rate_batch:8.0f} masks/s")
  print(f"  ours sample_batch, same, out= a reused array {_rate(run_batch_out):8.0f} masks/s")
  print(f"  ours sample_many, a new generator per mask   {_rate(run_many):8.0f} masks/s")
  print(f"  ours sample, one mask per call               {_rate(run_single):8.0f} masks/s")
  print(f"  ours mean hole fraction {frac.mean():.4f} (std {frac.std():.4f}, n={n})")

  if importlib.util.find_spec("cv2") is None:
    print("  cv2 not importable: no reference timing "
          "(pip install --target DIR opencv-python-headless; PYTHONPATH=DIR)")
    return
  import cv2  # pylint: disable=g-import-not-at-top

  cv2.setNumThreads(1)
  ref, rs = lama_reference(gen), np.random.RandomState(args.seed)

  def run_ref() -> int:
    for _ in range(n):
      ref(rs, size, size)
    return n

  rate_ref = _rate(run_ref)
  ref_frac = _fractions_ref(gen, n, size, args.seed)
  print(f"  cv2 reference, one mask per call           {rate_ref:8.0f} masks/s "
        f"(sample_batch: {rate_batch / rate_ref:.1f}x)")
  print(f"  cv2 mean hole fraction  {ref_frac.mean():.4f} (std {ref_frac.std():.4f}, n={n})")
  if args.compare:
    compare(n, size, args.seed)


if __name__ == "__main__":
  main()
