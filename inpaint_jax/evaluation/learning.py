"""The learning benchmark: a training run scored on held-out photos as it trains.

`configure` turns a family config into a learning run: the trainer's periodic evaluation
(`runner.PeriodicEval`) scores the generator every `every` steps on the held-out split with
fixed mask sets at the run's image size, logging whole-image and hole-only PSNR / SSIM / L1
(and LPIPS when its weights are given) to the workdir's `metrics.jsonl`. The run is an
ordinary training run: it checkpoints, resumes exactly, and stops at `total_steps` or after
`stop_after_minutes` of training over all its resumes.

`write` then gathers the curve from `metrics.jsonl`, scores the classical baselines
(OpenCV Telea and Navier-Stokes, mean fill) on the very same images and masks, and writes

* `learning.json`: {"config", "train_split", "held_out_split", "mask_sets", "n_examples",
  "image_size", "baselines": {name: {"<set>/<metric>": value}}, "curve": [{"step",
  "train_minutes", "<set>/<metric>": value, ...}], "final": the last point,
  "beats": {name: {"<set>/<metric>": bool}} (the final point against each baseline)};
* `learning.png`: one panel per hole metric of the first mask set, the run's curve over
  training minutes, the baselines as horizontal lines.

Training and held-out photos never overlap: the embedded source trains on its `train`
photos and is scored on `held_out` (`data.sources.EMBEDDED_HELD_OUT`); a folder run names
both folders.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
from PIL import Image, ImageDraw

from inpaint_jax.config_lib import eval_settings
from inpaint_jax.evaluation import baselines, runner
from inpaint_jax.metrics import pixel

CURVE_METRICS = pixel.HOLE_METRICS   # the hole-only scores: what the curves show
DEFAULT_MASKS = "irregular_20_30,thick_256"
LEARNING_JSON = "learning.json"
LEARNING_PNG = "learning.png"
_CURVE_PREFIXES = (runner.VAL_PREFIX, runner.EVAL_PREFIX)


def configure(config: ml_collections.ConfigDict, *, every: int, steps: int = 0,
              minutes: float = 0.0, masks: str = DEFAULT_MASKS, n_examples: int = 24,
              train_folder: str = "", held_out_folder: str = "",
              lpips_weights: str = "") -> None:
  """Makes `config` (in place, unlocked by the caller) a learning run.

  Args:
    config: a family config.
    every: score the generator every this many steps (and at the end).
    steps: total_steps (0 = the config's own).
    minutes: stop after this many minutes of training (0 = no time limit).
    masks: mask sets, comma-separated presets, generated at the run's image size.
    n_examples: (image, mask) pairs per set; a held-out split with fewer images is cycled.
    train_folder, held_out_folder: folders of photos, instead of the embedded split.
    lpips_weights: a converted LPIPS weights file, to add LPIPS to the curve.
  """
  if every <= 0:
    raise ValueError(f"--every={every}: must be a positive number of steps")
  if bool(train_folder) != bool(held_out_folder):
    raise ValueError("--train_folder and --held_out_folder go together: the held-out photos "
                     "must be other photos than the training ones")
  if train_folder and os.path.realpath(train_folder) == os.path.realpath(held_out_folder):
    raise ValueError(f"--held_out_folder {held_out_folder}: the same folder as "
                     "--train_folder; held-out photos must not be trained on")
  if steps:
    config.total_steps = int(steps)
  config.stop_after_minutes = float(minutes)
  config.eval_every_steps = int(every)
  ev = eval_settings(config)
  ev.masks = ev.periodic_masks = masks
  ev.image_size = int(config.data.image_size)
  ev.periodic_n_images = int(n_examples)
  ev.metrics = "psnr,ssim,l1" + (",lpips" if lpips_weights else "")
  ev.lpips_weights = lpips_weights
  if train_folder:
    config.data.source = "folder"
    config.data.folder = train_folder
    ev.source, ev.folder = "folder", held_out_folder
  else:
    config.data.embedded_split = "train"
    ev.embedded_split = "held_out"
  config.eval = ev


def split_names(config: ml_collections.ConfigDict) -> tuple[str, str]:
  """(training split, held-out split) in words, for the JSON."""
  ev = eval_settings(config)
  if config.data.source == "embedded":
    return (f"embedded:{config.data.get('embedded_split', 'all')}",
            f"embedded:{ev.embedded_split}")
  return (f"{config.data.source}:{config.data.get('folder', '')}",
          f"{ev.source or config.data.source}:{ev.folder}")


def baseline_scores(config: ml_collections.ConfigDict) -> dict[str, dict[str, float]]:
  """{baseline: {"<set>/<metric>": mean}} on the learning run's held-out examples."""
  periodic = runner.PeriodicEval(config)
  out = {}
  for name in baselines.BASELINES:
    scores = periodic.score(lambda img, hole, name=name: baselines.run_batch(name, img, hole))
    out[name] = {k.split("/", 1)[1]: v for k, v in scores.items()}
  return out


def read_curve(workdir: str) -> list[dict[str, float]]:
  """The evaluation points in `workdir/metrics.jsonl`, one per step (the last one written
  wins: a step evaluated again after a resume replaces the earlier line)."""
  by_step: dict[int, dict[str, float]] = {}
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue   # a line cut by a kill
      if "time/train_minutes" not in row:
        continue
      point = {"step": int(row["step"]), "train_minutes": float(row["time/train_minutes"])}
      # Periodic validation scalars; "eval/" in workdirs written before they were named
      # apart from the full evaluation's.
      point.update({k.split("/", 1)[1]: float(v) for k, v in row.items()
                    if k.split("/", 1)[0] in _CURVE_PREFIXES})
      by_step[point["step"]] = point
  return [by_step[s] for s in sorted(by_step)]


def _better(metric: str, a: float, b: float) -> bool:
  return a < b if metric.split("_")[0] in ("l1", "lpips") else a > b


def write(config: ml_collections.ConfigDict, workdir: str, *, config_name: str = "",
          command: str = "") -> dict[str, Any]:
  """Writes `learning.json` and `learning.png` into `workdir`; returns the JSON's content."""
  ev = eval_settings(config)
  curve = read_curve(workdir)
  base = baseline_scores(config)
  train_split, held_out_split = split_names(config)
  final = curve[-1] if curve else {}
  beats = {name: {k: _better(k.split("/")[-1], final[k], v) for k, v in scores.items()
                  if k in final and math.isfinite(v)}
           for name, scores in base.items()}
  out = {"config": config_name, "command": command, "train_split": train_split,
         "held_out_split": held_out_split,
         "mask_sets": [s.strip() for s in str(ev.masks).split(",") if s.strip()],
         "n_examples": int(ev.periodic_n_images), "image_size": int(config.data.image_size),
         "baselines": base, "curve": curve, "final": final, "beats": beats}
  with open(os.path.join(workdir, LEARNING_JSON), "w") as f:
    json.dump(out, f, indent=1)
  plot(out, os.path.join(workdir, LEARNING_PNG))
  return out


# ------------------------------------------------------------------------------------------
# The picture (PIL only: no plotting library is needed).
# ------------------------------------------------------------------------------------------
_COLOURS = {"run": (31, 119, 180), "opencv_telea": (214, 39, 40), "opencv_ns": (148, 103, 189),
            "mean_fill": (127, 127, 127)}
_PANEL_W, _PANEL_H, _MARGIN = 360, 260, 64


def plot(learning: dict[str, Any], path: str, metrics: Sequence[str] = CURVE_METRICS) -> None:
  """One panel per metric of the first mask set: the curve over training minutes and the
  baselines as dashed horizontal lines, each labelled."""
  set_name = learning["mask_sets"][0]
  canvas = Image.new("RGB", (len(metrics) * (_PANEL_W + _MARGIN) + _MARGIN,
                             _PANEL_H + 2 * _MARGIN + 20), "white")
  draw = ImageDraw.Draw(canvas)
  draw.text((_MARGIN, 6), f"{learning['config']}: held-out {learning['held_out_split']}, "
            f"{set_name}, {learning['n_examples']} examples at {learning['image_size']} px",
            fill="black")
  for i, metric in enumerate(metrics):
    key = f"{set_name}/{metric}"
    x0, y0 = _MARGIN + i * (_PANEL_W + _MARGIN), _MARGIN
    pts = [(p["train_minutes"], p[key]) for p in learning["curve"]
           if key in p and math.isfinite(p[key])]
    lines = {n: s[key] for n, s in learning["baselines"].items()
             if key in s and math.isfinite(s[key])}
    values = [v for _, v in pts] + list(lines.values())
    if not values:
      continue
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    t_max = max([t for t, _ in pts] + [1e-6])
    sx = lambda t, x0=x0, t_max=t_max: x0 + _PANEL_W * t / t_max
    sy = lambda v, lo=lo, hi=hi, y0=y0: y0 + _PANEL_H * (1 - (v - lo) / (hi - lo))
    draw.rectangle((x0, y0, x0 + _PANEL_W, y0 + _PANEL_H), outline="black")
    draw.text((x0, y0 - 14), metric + (" (lower is better)" if metric.startswith("l1")
                                       else ""), fill="black")
    for frac in (0.0, 0.5, 1.0):
      v = lo + frac * (hi - lo)
      draw.text((x0 - 44, sy(v) - 5), f"{v:.3g}", fill="black")
      draw.text((sx(frac * t_max) - 8, y0 + _PANEL_H + 4), f"{frac * t_max:.0f}", fill="black")
    draw.text((x0 + _PANEL_W // 2 - 40, y0 + _PANEL_H + 18), "training minutes", fill="black")
    for k, (name, v) in enumerate(sorted(lines.items())):
      y = sy(v)
      for xa in range(int(x0), int(x0 + _PANEL_W), 8):
        draw.line((xa, y, min(xa + 4, x0 + _PANEL_W), y), fill=_COLOURS.get(name, "black"))
      draw.text((x0 + 4 + 90 * k, y - 12), name, fill=_COLOURS.get(name, "black"))
    if len(pts) > 1:
      draw.line([(sx(t), sy(v)) for t, v in pts], fill=_COLOURS["run"], width=2)
    for t, v in pts:
      draw.ellipse((sx(t) - 2, sy(v) - 2, sx(t) + 2, sy(v) + 2), fill=_COLOURS["run"])
    if pts:
      draw.text((x0 + _PANEL_W - 60, y0 + 4), "this run", fill=_COLOURS["run"])
  canvas.save(path)

