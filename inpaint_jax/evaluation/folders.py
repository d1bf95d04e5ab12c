"""Scoring folders of inpainting results: matching files by name, reading them, the networks.

The library behind `python -m inpaint_jax.evaluate` (and the metric networks of
`eval_mode`): `evaluate(targets, output, predictions=..., masks=...)` scores a folder of
results against a folder of targets, files matched by name without extension.

Two layouts are matched (`pair_files`):

* same names: `a.png` in the predictions goes with `a.jpg` in the targets and `a.png` in the
  masks, and every name must be in every folder;
* LaMa's layout, as `python -m inpaint_jax.inpaint` reads and writes it: the results are
  named `NAME_mask*` (`photo_mask000.png`), the target of each is `NAME` (`photo.png`), its
  mask `NAME_mask*` in the masks folder, and the targets and masks may be one folder (the
  inpaint command's input). The scored set is the masks (the results without masks); a
  target image without a mask is not scored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from inpaint_jax.data.mask_sets import list_mask_files, read_mask
from inpaint_jax.evaluation import baselines, report, scoring
from inpaint_jax.metrics import fid, lpips

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_LIST = 8   # names listed in an error before "... and N more"


class InputError(ValueError):
  """Bad command-line input; the message is one line for the user."""


def _listing(names: Sequence[str]) -> str:
  names = sorted(names)
  more = f" ... and {len(names) - _LIST} more" if len(names) > _LIST else ""
  return ", ".join(names[:_LIST]) + more


def index_folder(folder: str, flag: str, extensions=IMAGE_EXTENSIONS) -> dict[str, str]:
  """{name without extension: file name} of the image files directly in `folder`."""
  if not os.path.isdir(folder):
    raise InputError(f"{flag}: {folder!r} is not a folder")
  out: dict[str, str] = {}
  dupes = []
  for f in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(f)
    if ext.lower() not in extensions:
      continue
    if stem in out:
      dupes.append(stem)
    out[stem] = f
  if dupes:
    raise InputError(f"{flag}: several files share a name in {folder!r}: {_listing(dupes)}")
  if not out:
    raise InputError(f"{flag}: no image files ({', '.join(extensions)}) in {folder!r}")
  return out


def read_image(path: str) -> np.ndarray:
  """(H, W, 3) float32 in [0, 1] from an image file (grey and RGBA become RGB)."""
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB"), np.float32) / 255.0
  except (OSError, ValueError) as e:
    raise InputError(f"{path!r} is not a readable image: {e}") from None


def match(folders: dict[str, dict[str, str]]) -> list[str]:
  """Names present in every folder; an error lists what is missing where."""
  all_names = set().union(*folders.values())
  problems = []
  for flag, idx in folders.items():
    missing = all_names - set(idx)
    if missing:
      problems.append(f"missing in {flag}: {_listing(missing)}")
  if problems:
    raise InputError("file names do not match (files are matched by name without "
                     "extension): " + "; ".join(problems))
  return sorted(all_names)


MASK_MARK = "_mask"   # inpaint's folder layout: NAME_mask*.png is a mask of NAME.png


def lama_base(name: str) -> str | None:
  """`photo` for `photo_mask000` (LaMa's layout), None for a name without `_mask`."""
  return name.rsplit(MASK_MARK, 1)[0] if MASK_MARK in name else None


def is_lama_layout(folders: dict[str, dict[str, str]]) -> bool:
  """Whether the results (or, for a baseline, the masks) are `NAME_mask*` of targets `NAME`."""
  refs = folders.get("--predictions", folders.get("--masks"))
  if refs is None:
    return False
  marked = [n for n in refs if lama_base(n) is not None]
  if not marked or ("--predictions" in folders and len(marked) != len(refs)):
    return False
  return any(lama_base(n) in folders["--targets"] for n in marked)


def pair_files(folders: dict[str, dict[str, str]]) -> list[tuple[str, dict[str, str]]]:
  """[(name, {flag: file name})] to score, sorted by name; an error lists what is missing.

  `folders` maps `--targets` (always), `--predictions` and `--masks` to their index
  ({name without extension: file name}); the layouts are in the module docstring.
  """
  if not is_lama_layout(folders):
    return [(n, {flag: idx[n] for flag, idx in folders.items()}) for n in match(folders)]
  targets = {n: f for n, f in folders["--targets"].items() if lama_base(n) is None}
  masks = ({n: f for n, f in folders["--masks"].items() if lama_base(n) is not None}
           if "--masks" in folders else None)
  preds = folders.get("--predictions")
  names = set(masks if masks is not None else preds)
  problems = []
  if preds is not None:
    if names - set(preds):
      problems.append(f"missing in --predictions: {_listing(names - set(preds))}")
    if set(preds) - names:
      problems.append(f"missing in --masks: {_listing(set(preds) - names)}")
  no_target = sorted(f"{lama_base(n)} (for {n})" for n in names if lama_base(n) not in targets)
  if no_target:
    problems.append(f"missing in --targets: {_listing(no_target)}")
  if problems:
    raise InputError("file names do not match (LaMa's layout: results and masks NAME_mask*, "
                     "targets NAME): " + "; ".join(problems))
  out = []
  for n in sorted(names):
    files = {"--targets": targets[lama_base(n)]}
    if masks is not None:
      files["--masks"] = masks[n]
    if preds is not None:
      files["--predictions"] = preds[n]
    out.append((n, files))
  return out


def load_networks(metrics: Sequence[str], lpips_weights: str | None,
                  inception_weights: str | None) -> dict[str, Any]:
  """{"lpips_fn", "fid_fn", "unavailable"} for the requested metrics."""
  out: dict[str, Any] = {"lpips_fn": None, "fid_fn": None, "unavailable": {}}
  if "lpips" in metrics:
    if not lpips_weights:
      out["unavailable"]["lpips"] = "no LPIPS weights given (--lpips_weights)"
    else:
      out["lpips_fn"] = lpips.load(lpips_weights)
  if "fid" in metrics:
    if not inception_weights:
      out["unavailable"]["fid"] = "no Inception weights given (--inception_weights)"
    else:
      out["fid_fn"] = fid.load(inception_weights)
  return out


def evaluate(targets: str, output: str, *, predictions: str | None = None,
             masks: str | None = None, metrics: str | Sequence[str] = scoring.METRICS,
             baseline: str | None = None, lpips_weights: str | None = None,
             inception_weights: str | None = None, ssim_mode: str = "skimage",
             batch_size: int = 16, log=print) -> dict[str, Any]:
  """Scores the folders and writes FILE.json / .md / .png; returns the results dict."""
  names_metrics = scoring.parse_metrics(metrics)
  if baseline is not None:
    baselines.get(baseline)
    if predictions is not None:
      raise InputError("give either --predictions or --baseline, not both")
    if masks is None:
      raise InputError("--baseline needs --masks (the holes to fill)")
  elif predictions is None:
    raise InputError("--predictions is required (or --baseline NAME)")
  if batch_size < 1:
    raise InputError(f"--batch_size must be >= 1, got {batch_size}")
  folders = {"--targets": index_folder(targets, "--targets")}
  if predictions is not None:
    folders["--predictions"] = index_folder(predictions, "--predictions")
  if masks is not None:
    mask_files = list_mask_files(masks)
    folders["--masks"] = {os.path.splitext(f)[0]: f for f in mask_files}
  pairs = pair_files(folders)
  nets = load_networks(names_metrics, lpips_weights, inception_weights)
  scorer = scoring.Scorer(names_metrics, lpips_fn=nets["lpips_fn"], fid_fn=nets["fid_fn"],
                          unavailable=nets["unavailable"], ssim_mode=ssim_mode)

  # Read everything once (sizes checked up front), then score in same-size batches.
  groups: dict[tuple[int, ...], list[tuple[str, np.ndarray, np.ndarray, Any]]] = {}
  bad_sizes = []
  for name, files in pairs:
    tgt = read_image(os.path.join(targets, files["--targets"]))
    m = None
    if masks is not None:
      m = read_mask(os.path.join(masks, files["--masks"]))
      if m.shape != tgt.shape[:2]:
        bad_sizes.append(f"{name} (mask {m.shape[1]}x{m.shape[0]}, target "
                         f"{tgt.shape[1]}x{tgt.shape[0]})")
        continue
    if predictions is not None:
      pred = read_image(os.path.join(predictions, files["--predictions"]))
      if pred.shape != tgt.shape:
        bad_sizes.append(f"{name} (prediction {pred.shape[1]}x{pred.shape[0]}, target "
                         f"{tgt.shape[1]}x{tgt.shape[0]})")
        continue
    else:
      pred = None
    groups.setdefault(tgt.shape, []).append((name, pred, tgt, m))
  if bad_sizes:
    raise InputError(f"sizes differ (WxH) for {len(bad_sizes)} file(s): {_listing(bad_sizes)}")

  t0 = time.perf_counter()
  for items in groups.values():
    for s in range(0, len(items), batch_size):
      chunk = items[s:s + batch_size]
      tgt = np.stack([c[2] for c in chunk])
      m = None if masks is None else np.stack([c[3] for c in chunk]).astype(np.float32)
      if baseline is not None:
        pred = baselines.run_batch(baseline, tgt, m)
      else:
        pred = np.stack([c[1] for c in chunk])
      scorer.add(pred, tgt, m, [c[0] for c in chunk])
  seconds = time.perf_counter() - t0
  results = scorer.results()
  results["source"] = {"predictions": predictions, "baseline": baseline, "targets": targets,
                       "masks": masks}
  results["seconds"] = seconds
  stem = os.path.splitext(output)[0]
  paths = report.write(output, results, scorer.examples(), md_path=stem + ".md",
                       png_path=stem + ".png",
                       title=f"{baseline or predictions} vs {targets}")
  log(f"scored {results['n_images']} images in {seconds:.1f} s: "
      + ", ".join(f"{m} {report.fmt(results.get(m), m)}" for m in names_metrics)
      + f"; wrote {', '.join(paths.values())}")
  return results
