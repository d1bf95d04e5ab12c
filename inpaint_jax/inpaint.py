r"""`python -m inpaint_jax.inpaint`: inpaint images with any family's generator.

  python -m inpaint_jax.inpaint --checkpoint DIR --image IMG --mask MASK --output OUT
  python -m inpaint_jax.inpaint --checkpoint DIR --input_dir IN --output_dir OUT \
      [--image_suffix .png] [--bucket 128]

DIR is a model directory (`python -m inpaint_jax.convert`) or a training workdir (its latest
checkpoint, EMA weights when kept). Convention for every family: image RGB, mask white
(non-zero) = hole; see `inpaint_jax.image_io` for the accepted files and `.npy` in/out.

Folder mode follows LaMa's layout: every `*mask*.png` under IN (recursively) is a mask, its
image is the mask's name up to `_mask` plus `--image_suffix` (`photo.png` beside
`photo_mask000.png`, `photo_mask001.png`, ...), and the result goes to OUT under the mask's
relative name with `.png` (`python -m inpaint_jax.masks --images` writes such a folder, and
`python -m inpaint_jax.evaluate` matches the results back to it). Images without a mask and
masks without an image are skipped and counted; broken files are reported one line each and
the run goes on (exit status 2 at the end). Files are read and written by background threads
while the device runs, each padded shape compiles once (`--bucket` pads to a coarser grid, so
mixed sizes share programs), and a progress bar shows images/s and the ETA.

High resolution: `--hd_strategy original|resize|crop` with `--hd_trigger_size`,
`--hd_resize_limit`, `--hd_crop_margin` (see `inpaint_jax.hd`); `--refine` runs LaMa's
feature refinement (see `inpaint_jax.refine`). Flags are also accepted in dash-case
(`--input-dir`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from inpaint_jax import errors
from inpaint_jax.data import image_io
from inpaint_jax.errors import UserError
from inpaint_jax.inference import hd

_DESCRIPTION = """\
Inpaint images with a model directory or a training workdir: one image (--image, --mask,
--output), or a folder in LaMa's layout (--input_dir, --output_dir): every NAME_mask*.png
beside NAME.png, results under the masks' names. Masks: white / non-zero = hole."""

_EPILOG = """\
examples:
  python -m inpaint_jax.inpaint --checkpoint models/big-lama --image photo.jpg \\
      --mask mask.png --output out.png
  python -m inpaint_jax.inpaint --checkpoint models/big-lama --input_dir in/ --output_dir out/"""


def make_parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser("python -m inpaint_jax.inpaint", _DESCRIPTION, epilog=_EPILOG)
  p.add_argument("--checkpoint", required=True, metavar="DIR",
                 help="model directory or training workdir")
  p.add_argument("--image", metavar="FILE", help="input image (any Pillow format or .npy)")
  p.add_argument("--mask", metavar="FILE",
                 help="mask, white / non-zero = hole (image file or .npy)")
  p.add_argument("--output", metavar="FILE", help="result file (.png, .jpg, ... or .npy)")
  p.add_argument("--input_dir", metavar="DIR",
                 help="folder mode: LaMa layout (NAME.png + NAME_mask000.png, recursive)")
  p.add_argument("--output_dir", metavar="DIR",
                 help="folder mode: where results go (under the masks' names, .png)")
  p.add_argument("--image_suffix", default=".png", metavar="SUFFIX",
                 help="folder mode: file suffix of the images")
  p.add_argument("--bucket", type=int, default=None, metavar="N",
                 help="pad H and W to multiples of N (default: the model's size rule)")
  p.add_argument("--hd_strategy", default="original", choices=hd.STRATEGIES,
                 help="high resolution: run as is, resize down, or crop around the holes")
  p.add_argument("--hd_trigger_size", type=int, default=hd.HDConfig.trigger_size, metavar="PX",
                 help="resize / crop: only images with a longer side above this")
  p.add_argument("--hd_resize_limit", type=int, default=hd.HDConfig.resize_limit, metavar="PX",
                 help="resize: longer side the image is resized down to")
  p.add_argument("--hd_crop_margin", type=int, default=hd.HDConfig.crop_margin, metavar="PX",
                 help="crop: margin around each hole's bounding box")
  p.add_argument("--refine", action="store_true",
                 help="LaMa feature refinement (LaMa-family generators)")
  p.add_argument("--refine_iters", type=int, default=15, metavar="N",
                 help="refine: Adam steps per pyramid level")
  p.add_argument("--refine_lr", type=float, default=0.002, metavar="LR",
                 help="refine: Adam learning rate")
  p.add_argument("--refine_min_side", type=int, default=512, metavar="PX",
                 help="refine: smallest side of the coarsest pyramid level")
  p.add_argument("--refine_max_scales", type=int, default=3, metavar="N",
                 help="refine: most pyramid levels")
  p.add_argument("--refine_px_budget", type=int, default=1_800_000, metavar="PX",
                 help="refine: images with more pixels are resized down first")
  p.add_argument("--no_progress", action="store_true", help="no progress bar")
  return p


class Runner:
  """Loaded model + strategy: (image, mask) -> composite, in the uniform convention."""

  def __init__(self, args: argparse.Namespace):
    from inpaint_jax import restore  # pylint: disable=g-import-not-at-top
    from inpaint_jax.inference import engine as inference  # pylint: disable=g-import-not-at-top

    self.hd = hd.HDConfig(args.hd_strategy, args.hd_trigger_size, args.hd_resize_limit,
                          args.hd_crop_margin)
    config, g_model, variables = restore.load_generator(args.checkpoint)
    self.engine = inference.Inpainter(config, g_model, variables, bucket=args.bucket)
    self.refine = None
    if args.refine:
      refine_fn = self.engine.adapter.refine
      if refine_fn is None:
        raise UserError(f"--refine: not available for generator {config.generator.name!r}; "
                        f"accepted for LaMa-family (ffc_resnet) generators")
      options = dict(n_iters=args.refine_iters, lr=args.refine_lr,
                     min_side=args.refine_min_side, max_scales=args.refine_max_scales,
                     px_budget=args.refine_px_budget)
      self.refine = lambda image, mask: refine_fn(g_model, self.engine.variables, config,
                                                  image, mask, **options)

  @property
  def is_plain(self) -> bool:
    """One device pass per image, so it can be dispatched asynchronously."""
    return self.refine is None and self.hd.strategy == "original"

  def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    infer = self.refine or self.engine
    return hd.inpaint_hd(image, mask, infer, self.hd)


def read_single(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
  """Checks and reads --image / --mask (before the model loads: bad files fail fast)."""
  image_io.check_output_path(args.output)
  errors.check_output_location(args.output, "--output")
  return image_io.read_pair(args.image, args.mask)


# ----------------------------------------------------------------------------- folder mode


def find_pairs(input_dir: str, image_suffix: str) -> tuple[list[tuple[str, str]], list[str],
                                                            list[str]]:
  """LaMa's layout: ([(image, mask)], masks without image, images without mask)."""
  masks = sorted(glob.glob(os.path.join(glob.escape(input_dir), "**", "*mask*.png"),
                           recursive=True))
  pairs, orphans = [], []
  for m in masks:
    image = m.rsplit("_mask", 1)[0] + image_suffix
    (pairs if os.path.isfile(image) else orphans).append((image, m))
  with_mask = {img for img, _ in pairs}
  images = sorted(glob.glob(os.path.join(glob.escape(input_dir), "**", f"*{image_suffix}"),
                            recursive=True))
  no_mask = [p for p in images if "mask" not in os.path.basename(p) and p not in with_mask]
  return pairs, [m for _, m in orphans], no_mask


def _prefetch(pairs: list[tuple[str, str]], depth: int = 4) -> Iterator[tuple[int, Any]]:
  """Yields (index, (image, mask) or UserError), read by a background thread."""
  q: queue.Queue = queue.Queue(maxsize=depth)

  def work():
    for i, (img, msk) in enumerate(pairs):
      try:
        q.put((i, image_io.read_pair(img, msk, "image", "mask")))
      except UserError as e:
        q.put((i, e))
    q.put(None)

  threading.Thread(target=work, daemon=True, name="inpaint-prefetch").start()
  while (item := q.get()) is not None:
    yield item


def run_folder(runner: Runner, args: argparse.Namespace) -> int:
  """Returns the number of refused pairs."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  if not os.path.isdir(args.input_dir):
    raise UserError(f"--input_dir {args.input_dir}: no such folder")
  errors.check_output_location(args.output_dir, "--output_dir", folder=True)
  pairs, orphans, no_mask = find_pairs(args.input_dir, args.image_suffix)
  for m in orphans:
    print(f"warning: skipped mask {m}: no image "
          f"{m.rsplit('_mask', 1)[0] + args.image_suffix}", file=sys.stderr)
  if no_mask:
    print(f"warning: skipped {len(no_mask)} image(s) without a mask (NAME_mask*.png), e.g. "
          f"{no_mask[0]}", file=sys.stderr)
  if not pairs:
    raise UserError(f"--input_dir {args.input_dir}: no image/mask pairs (expected "
                    f"NAME{args.image_suffix} beside NAME_mask000.png)")

  def out_path(mask_path: str) -> str:
    rel = os.path.relpath(mask_path, args.input_dir)
    return os.path.join(args.output_dir, os.path.splitext(rel)[0] + ".png")

  refused = 0
  writer = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="writer")
  writes = []
  bar = tqdm(total=len(pairs), unit="img", disable=args.no_progress, file=sys.stderr,
             dynamic_ncols=True)
  pending: list[tuple[int, Any]] = []  # at most one pass in flight ahead of the host

  def finish(i: int, result: Any) -> None:
    out = result.result() if hasattr(result, "result") else result
    writes.append(writer.submit(image_io.write_result, out_path(pairs[i][1]), out))
    bar.update(1)

  start = time.perf_counter()
  for i, item in _prefetch(pairs):
    if isinstance(item, UserError):
      refused += 1
      bar.write(f"warning: skipped: {item}", file=sys.stderr)
      bar.update(1)
      continue
    image, mask = item
    if runner.is_plain and np.any(mask):
      pending.append((i, runner.engine.submit(image, mask)))  # async dispatch
    else:
      pending.append((i, runner(image, mask)))
    while len(pending) > 1:
      finish(*pending.pop(0))
  while pending:
    finish(*pending.pop(0))
  for w in writes:
    w.result()
  writer.shutdown()
  bar.close()
  done = len(pairs) - refused
  seconds = time.perf_counter() - start
  print(f"inpainted {done} image(s) in {seconds:.1f} s ({done / max(seconds, 1e-9):.3g} "
        f"images/s); skipped: {len(orphans)} mask(s) without image, {len(no_mask)} image(s) "
        f"without mask, {refused} refused", file=sys.stderr)
  print(f"wrote {done} result(s) to {args.output_dir}", flush=True)
  return refused


def main(argv: list[str] | None = None) -> None:
  args = make_parser().parse_args(argv)
  single = (args.image, args.mask, args.output)
  folder = (args.input_dir, args.output_dir)
  try:
    if any(folder):
      if any(single):
        raise UserError("use either --image/--mask/--output or --input_dir/--output_dir")
      if not all(folder):
        raise UserError("folder mode needs both --input_dir and --output_dir")
    elif not all(single):
      missing = [f for f, v in zip(("--image", "--mask", "--output"), single, strict=True) if not v]
      raise UserError(f"{', '.join(missing)} required (or --input_dir and --output_dir)")
    with errors.as_user_errors():
      inputs = None if any(folder) else read_single(args)
      runner = Runner(args)
      if any(folder):
        refused = run_folder(runner, args)
        if refused:
          raise UserError(f"{refused} of the image/mask pairs in {args.input_dir} were refused "
                          f"(see the warnings above); the others were written")
      else:
        image_io.write_result(args.output, runner(*inputs))
        print(f"wrote {args.output}", flush=True)
  except UserError as e:
    errors.exit_with(str(e))
  except KeyboardInterrupt:
    errors.exit_interrupted("Ctrl-C; the results written before it are complete files")


if __name__ == "__main__":
  main()
