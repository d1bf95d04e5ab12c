"""Writes evaluation results: `results.json`, `results.md` and `report.png`.

`report.png` has two parts, drawn with Pillow only (no plotting library):

* one small chart per metric: its value per hole-area bin (bins without images are
  skipped), with the mean over all images as a dashed line;
* a grid of the best, median and worst examples by the ranking metric (LPIPS when
  computed, else SSIM), each as masked input (holes white) | result | target.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from inpaint_jax.evaluation.scoring import HIGHER_IS_BETTER

_ARROW = {True: "higher is better", False: "lower is better"}


def fmt(v: Any, metric: str = "") -> str:
  if v is None:
    return "n/a"
  if isinstance(v, int):
    return str(v)
  if isinstance(v, float) and math.isinf(v):
    return "inf"
  return f"{v:.2f}" if metric in ("psnr", "fid") else f"{v:.4f}"


def markdown(results: Mapping[str, Any], title: str = "") -> str:
  """results.md text: the means, then one row per hole-area bin."""
  metrics = list(results["metrics"])
  lines = [f"# {title}" if title else "# Evaluation", ""]
  head = "| | images | " + " | ".join(metrics) + " |"
  rule = "|---|---|" + "---|" * len(metrics)
  lines += [head, rule, "| all | " + str(results["n_images"]) + " | "
            + " | ".join(fmt(results.get(m), m) for m in metrics) + " |"]
  for name, row in (results.get("bins") or {}).items():
    lines.append(f"| {name} | {row['n_images']} | "
                 + " | ".join(fmt(row.get(m), m) for m in metrics) + " |")
  lines.append("")
  lines.append("Arrows: " + ", ".join(f"{m} {_ARROW[HIGHER_IS_BETTER[m]]}" for m in metrics)
               + ". Rows after `all`: images binned by hole area.")
  for m, why in (results.get("unavailable") or {}).items():
    lines.append(f"- {m}: unavailable ({why})")
  if results.get("hole_fraction_mean") is not None:
    lines.append(f"- mean hole fraction: {results['hole_fraction_mean']:.4f}")
  lines.append(f"- SSIM mode: {results.get('ssim_mode', 'skimage')}")
  return "\n".join(lines) + "\n"


def _chart(metric: str, results: Mapping[str, Any], w: int, h: int,
           font: ImageFont.ImageFont) -> Image.Image:
  im = Image.new("RGB", (w, h), "white")
  d = ImageDraw.Draw(im)
  names = list((results.get("bins") or {}).keys())
  pts = [(i, row[metric]) for i, row in enumerate((results.get("bins") or {}).values())
         if row.get(metric) is not None and math.isfinite(row[metric])]
  d.text((6, 4), f"{metric} by hole area ({_ARROW[HIGHER_IS_BETTER[metric]]})", fill="black",
         font=font)
  left, top, right, bottom = 46, 22, w - 8, h - 22
  d.rectangle([left, top, right, bottom], outline="grey")
  if not pts:
    d.text((left + 8, (top + bottom) // 2), "no values", fill="grey", font=font)
    return im
  vals = [v for _, v in pts]
  mean = results.get(metric)
  span = vals + ([mean] if isinstance(mean, float) and math.isfinite(mean) else [])
  lo, hi = min(span), max(span)
  if hi - lo < 1e-12:
    lo, hi = lo - 0.5 * abs(lo or 1) * 0.1, hi + 0.5 * abs(hi or 1) * 0.1
  n = max(1, len(names) - 1)
  xy = lambda i, v: (left + (right - left) * i / n, bottom - (bottom - top) * (v - lo) / (hi - lo))
  if len(span) > len(vals):   # the all-images mean, dashed
    y = xy(0, mean)[1]
    for x in range(left, right, 8):
      d.line([(x, y), (min(x + 4, right), y)], fill=(200, 80, 80))
  line = [xy(i, v) for i, v in pts]
  if len(line) > 1:
    d.line(line, fill=(30, 90, 200), width=2)
  for x, y in line:
    d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(30, 90, 200))
  d.text((2, top - 2), fmt(hi, metric), fill="black", font=font)
  d.text((2, bottom - 10), fmt(lo, metric), fill="black", font=font)
  d.text((left - 10, bottom + 4), names[0], fill="black", font=font)
  last = names[-1]
  d.text((right - d.textlength(last, font=font), bottom + 4), last, fill="black", font=font)
  return im


def picture(results: Mapping[str, Any], examples: Mapping[str, Sequence[Mapping[str, Any]]],
            cell: int = 128) -> Image.Image:
  """The report picture (charts on top, example grid below) as a PIL image."""
  font = ImageFont.load_default()
  metrics = [m for m in results["metrics"]]
  cw, ch = 300, 170
  cols = max(1, min(len(metrics), 3))
  rows_c = math.ceil(len(metrics) / cols)
  rows = [(k, e) for k in ("best", "median", "worst") for e in examples.get(k, [])]
  grid_w = 3 * cell + 180
  width = max(cols * cw, grid_w)
  height = rows_c * ch + 20 + len(rows) * (cell + 4) + (18 if rows else 0)
  im = Image.new("RGB", (width, height), "white")
  for i, m in enumerate(metrics):
    im.paste(_chart(m, results, cw, ch, font), ((i % cols) * cw, (i // cols) * ch))
  d = ImageDraw.Draw(im)
  y = rows_c * ch + 4
  if rows:
    d.text((180, y), "masked | result | target", fill="black", font=font)
    y += 16
  for kind, ex in rows:
    d.text((4, y + 4), f"{kind}: {ex['name']}"[:28], fill="black", font=font)
    d.text((4, y + 20), f"{results.get('rank_metric', '')} {fmt(ex['value'])}", fill="black",
           font=font)
    for j, thumb in enumerate(ex["images"]):
      t = Image.fromarray(np.asarray(thumb))
      im.paste(t, (180 + j * cell + (cell - t.width) // 2, y + (cell - t.height) // 2))
    y += cell + 4
  return im


def write(json_path: str, results: Mapping[str, Any],
          examples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None, *,
          md_path: str | None = None, png_path: str | None = None,
          title: str = "") -> dict[str, str]:
  """Writes the results JSON, and the markdown table and report picture when given paths.

  Returns:
    {"json" | "md" | "png": path} of the files written.
  """
  paths = {"json": json_path}
  for p in (json_path, md_path, png_path):
    if p and os.path.dirname(p):
      os.makedirs(os.path.dirname(p), exist_ok=True)
  with open(json_path, "w") as f:
    json.dump(results, f, indent=1)
  if md_path:
    with open(md_path, "w") as f:
      f.write(markdown(results, title))
    paths["md"] = md_path
  if png_path and examples is not None:
    picture(results, examples).save(png_path)
    paths["png"] = png_path
  return paths


def write_dir(out_dir: str, results: Mapping[str, Any],
              examples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
              title: str = "") -> dict[str, str]:
  """`write` into `out_dir` as results.json, results.md and report.png."""
  return write(os.path.join(out_dir, "results.json"), results, examples,
               md_path=os.path.join(out_dir, "results.md"),
               png_path=os.path.join(out_dir, "report.png"), title=title)


def write_table(out_dir: str, paper: Mapping[str, Any]) -> dict[str, str]:
  """A protocol's table (`evaluation.protocol.table`) as table.md and table.json."""
  os.makedirs(out_dir, exist_ok=True)
  md, js = os.path.join(out_dir, "table.md"), os.path.join(out_dir, "table.json")
  with open(md, "w") as f:
    f.write(paper["markdown"])
  with open(js, "w") as f:
    json.dump({k: v for k, v in paper.items() if k != "markdown"}, f, indent=1, default=float)
  return {"md": md, "json": js}
