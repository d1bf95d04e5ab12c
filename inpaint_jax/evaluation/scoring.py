"""Scores batches of (result, target, mask) and aggregates them the way LaMa's tables do.

`Scorer.add` takes batches of results and targets (NHWC float in [0, 1]) with their hole
masks; `Scorer.results()` gives the means over all images, every metric per hole-area bin
(`inpaint_jax.metrics.bins`, 10 bins as LaMa) and the per-image values. PSNR, SSIM, L1 and
LPIPS are per-image metrics averaged over images; FID compares the two feature
distributions (all results vs all targets of the set, or of the bin) and has no per-image
value. The scorer also keeps small thumbnails of the best, median and worst examples for
the report picture, with bounded memory (the median comes from a fixed-size random
reservoir, so any number of images can be scored).

LPIPS and FID need network weights. A caller that has none passes `unavailable` reasons
instead of the functions; the metric is then `null` in the results, with its reason under
`"unavailable"`, never a made-up number.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from PIL import Image

from inpaint_jax.metrics import bins as area_bins
from inpaint_jax.metrics import frechet
from inpaint_jax.metrics.pixel import image_metrics

METRICS = ("psnr", "ssim", "l1", "lpips", "fid")
PER_IMAGE = ("psnr", "ssim", "l1", "lpips")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "lpips": False, "fid": False}

# (B, H, W, 3) results, (B, H, W, 3) targets -> (B,) distances.
LpipsFn = Callable[[jax.Array, jax.Array], jax.Array]
# (B, H, W, 3) images in [0, 1] -> (B, D) features.
FeatureFn = Callable[[jax.Array], jax.Array]


def parse_metrics(spec: str | Sequence[str], field: str = "--metrics") -> list[str]:
  """"psnr,ssim" or a list -> validated metric names (in the order of `METRICS`)."""
  names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
  names = [n for n in names if n]
  bad = [n for n in names if n not in METRICS]
  if bad or not names:
    raise ValueError(f"{field}: unknown metric(s) {', '.join(bad) or '(none given)'}; accepted: "
                     f"{', '.join(METRICS)}")
  return [m for m in METRICS if m in names]


def _thumb(img: np.ndarray, side: int) -> np.ndarray:
  """(H, W, 3) float [0, 1] -> uint8 thumbnail whose longer side is at most `side`."""
  im = Image.fromarray(np.clip(np.round(img * 255), 0, 255).astype(np.uint8))
  im.thumbnail((side, side), Image.Resampling.BILINEAR)
  return np.asarray(im)


class Scorer:
  """Accumulates per-image metrics, FID features and example thumbnails.

  Args:
    metrics: names from `METRICS`.
    lpips_fn: LPIPS distance function, or None (then "lpips" needs a reason in `unavailable`).
    fid_fn: Inception feature function, or None (same for "fid").
    unavailable: {metric: reason} for requested metrics that cannot be computed.
    ssim_mode: "skimage" or "lama" (see `inpaint_jax.metrics.structural`).
    n_bins: hole-area bins.
    n_examples: examples per row (best / median / worst) of the report.
    thumb_side: longest side of the kept thumbnails.
    seed: seed of the median reservoir.
  """

  def __init__(self, metrics: Sequence[str], *, lpips_fn: LpipsFn | None = None,
               fid_fn: FeatureFn | None = None, unavailable: Mapping[str, str] | None = None,
               ssim_mode: str = "skimage", n_bins: int = 10, n_examples: int = 3,
               thumb_side: int = 128, seed: int = 0):
    self.metrics = parse_metrics(metrics)
    self.unavailable = dict(unavailable or {})
    for name, fn in (("lpips", lpips_fn), ("fid", fid_fn)):
      if name in self.metrics and fn is None and name not in self.unavailable:
        self.unavailable[name] = "no network given"
    self.lpips_fn = lpips_fn if "lpips" in self.metrics else None
    self.fid_fn = fid_fn if "fid" in self.metrics else None
    self.ssim_mode = ssim_mode
    self.n_bins = n_bins
    self.n_examples = n_examples
    self.thumb_side = thumb_side
    self._rng = np.random.default_rng(seed)
    self._names: list[str] = []
    self._areas: list[np.ndarray] = []
    self._values: dict[str, list[np.ndarray]] = {m: [] for m in PER_IMAGE}
    self._feats: dict[str, list[np.ndarray]] = {"result": [], "target": []}
    self._has_masks = True
    self._best: list[tuple[float, int, Any]] = []   # heaps of (key, counter, example)
    self._worst: list[tuple[float, int, Any]] = []
    self._reservoir: list[tuple[float, Any]] = []
    self._seen = 0

  @property
  def rank_metric(self) -> str:
    """The metric that orders examples: LPIPS when computed, else SSIM."""
    return "lpips" if self.lpips_fn is not None else "ssim"

  def add(self, result: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None,
          names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Scores one batch.

    Args:
      result: (B, H, W, 3) float results in [0, 1] (for a model: the composite).
      target: (B, H, W, 3) float ground truth in [0, 1].
      mask: (B, H, W) or (B, H, W, 1) holes (1 = hole), or None (no area bins then).
      names: B example names (default: running numbers).

    Returns:
      {metric: (B,) values} of the per-image metrics of this batch.
    """
    result = np.asarray(result, np.float32)
    target = np.asarray(target, np.float32)
    b = result.shape[0]
    if result.shape != target.shape or result.ndim != 4:
      raise ValueError(f"result {result.shape} and target {target.shape} must be one "
                       "(B, H, W, C) shape")
    names = list(names) if names is not None else [str(self._seen + i) for i in range(b)]
    if len(names) != b:
      raise ValueError(f"{len(names)} names for a batch of {b} images")
    if mask is None:
      self._has_masks = False
      area = np.full(b, np.nan)
    else:
      mask = np.asarray(mask, np.float32).reshape(b, *result.shape[1:3])
      area = mask.reshape(b, -1).mean(axis=1).astype(np.float64)
    out = {k: np.asarray(v, np.float64) for k, v in image_metrics(
        result, target, ssim_mode=self.ssim_mode).items()}
    if self.lpips_fn is not None:
      out["lpips"] = np.asarray(self.lpips_fn(result, target), np.float64).reshape(b)
    if self.fid_fn is not None:
      self._feats["result"].append(np.asarray(self.fid_fn(result), np.float32))
      self._feats["target"].append(np.asarray(self.fid_fn(target), np.float32))
    for k in PER_IMAGE:
      self._values[k].append(out.get(k, np.full(b, np.nan)))
    self._names.extend(names)
    self._areas.append(area)
    self._keep_examples(result, target, mask, names, out)
    self._seen += b
    return out

  def _keep_examples(self, result, target, mask, names, out) -> None:
    key = out[self.rank_metric]
    sign = -1.0 if HIGHER_IS_BETTER[self.rank_metric] else 1.0
    for i in range(result.shape[0]):
      if not np.isfinite(key[i]):
        continue
      score = sign * float(key[i])   # lower score = better example
      lazy = (names[i], float(key[i]), result[i], target[i],
              None if mask is None else mask[i])
      counter = self._seen + i
      # Thumbnails are made only for examples that enter a list.
      if len(self._best) < self.n_examples or -score > self._best[0][0]:
        item = (-score, counter, self._make_example(*lazy))
        if len(self._best) < self.n_examples:
          heapq.heappush(self._best, item)
        else:
          heapq.heapreplace(self._best, item)
      if len(self._worst) < self.n_examples or score > self._worst[0][0]:
        item = (score, counter, self._make_example(*lazy))
        if len(self._worst) < self.n_examples:
          heapq.heappush(self._worst, item)
        else:
          heapq.heapreplace(self._worst, item)
      cap = 16 * self.n_examples
      if len(self._reservoir) < cap:
        self._reservoir.append((float(key[i]), self._make_example(*lazy)))
      else:
        j = int(self._rng.integers(0, counter + 1))
        if j < cap:
          self._reservoir[j] = (float(key[i]), self._make_example(*lazy))

  def _make_example(self, name, value, result, target, mask) -> dict[str, Any]:
    masked = target.copy()
    if mask is not None:
      masked[mask > 0.5] = 1.0   # holes shown white
    return {"name": name, "value": value,
            "images": [_thumb(x, self.thumb_side) for x in (masked, result, target)]}

  def examples(self) -> dict[str, list[dict[str, Any]]]:
    """{"best" | "median" | "worst": examples}, each {name, value, images: 3 thumbnails}."""
    if not self._seen:
      return {"best": [], "median": [], "worst": []}
    ranked = self._values[self.rank_metric]
    allv = np.concatenate(ranked)
    median = float(np.nanmedian(allv)) if np.isfinite(allv).any() else 0.0
    best = [e for _, _, e in sorted(self._best, key=lambda t: -t[0])]
    worst = [e for _, _, e in sorted(self._worst, key=lambda t: -t[0])]
    shown = {e["name"] for e in best + worst}
    pool = [kv for kv in self._reservoir if kv[1]["name"] not in shown] or self._reservoir
    near = sorted(pool, key=lambda kv: abs(kv[0] - median))[:self.n_examples]
    return {"best": best, "median": sorted((e for _, e in near), key=lambda e: e["value"]),
            "worst": worst}

  def _fid(self, sel: np.ndarray | None) -> float | None:
    res, tgt = np.concatenate(self._feats["result"]), np.concatenate(self._feats["target"])
    if sel is not None:
      res, tgt = res[sel], tgt[sel]
    if res.shape[0] < 2:
      return None
    return frechet.fid_from_features(res, tgt)

  def _summary(self, values: dict[str, np.ndarray], sel: np.ndarray | None) -> dict[str, Any]:
    n = int(values["l1"].shape[0] if sel is None else sel.sum())
    row: dict[str, Any] = {"n_images": n}
    for m in self.metrics:
      if m in self.unavailable:
        row[m] = None
      elif m == "fid":
        row[m] = self._fid(sel) if n else None
      else:
        v = values[m] if sel is None else values[m][sel]
        row[m] = float(np.mean(v)) if n else None
    return row

  def results(self, per_image: bool = True) -> dict[str, Any]:
    """The aggregated results (JSON-ready).

    Returns:
      {"n_images", <metric>: mean or FID (null if unavailable), "metrics", "unavailable",
       "ssim_mode", "rank_metric", "hole_fraction_mean", "bins": {"0-10%": {"n_images",
       <metric>: ...}, ...} (only when masks were given), "per_image": {name: {"hole",
       <metric>: ...}} (if `per_image`)}.
    """
    values = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in self._values.items()}
    areas = np.concatenate(self._areas) if self._areas else np.zeros(0)
    out = self._summary(values, None)
    out.update({"metrics": self.metrics, "unavailable": self.unavailable,
                "ssim_mode": self.ssim_mode, "rank_metric": self.rank_metric})
    if self._has_masks and self._seen:
      out["hole_fraction_mean"] = float(np.mean(areas))
      idx = area_bins.bin_index(areas, self.n_bins)
      out["bins"] = {name: self._summary(values, idx == b)
                     for b, name in enumerate(area_bins.bin_names(self.n_bins))}
    if per_image:
      per = {}
      for i, name in enumerate(self._names):
        row = {"hole": None if np.isnan(areas[i]) else float(areas[i])}
        for m in self.metrics:
          if m in PER_IMAGE and m not in self.unavailable:
            row[m] = float(values[m][i])
        per[name] = row
      out["per_image"] = per
    return out
