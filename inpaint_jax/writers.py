"""Metric and image writers that need no TensorFlow.

clu 0.0.12's `metric_writers` and `periodic_actions` import TensorFlow (about
1.3 GB installed), which nothing else in training needs. This module writes the
same artefacts without it: TensorBoard event files through tensorboardX, a
`metrics.jsonl` file, PNG sample grids and log lines. Only process 0 writes;
other processes get a writer whose methods do nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging
from PIL import Image


class MetricWriter:
  """Writes scalars and images to TensorBoard, JSON lines and PNG files."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.enabled = enabled
    self.workdir = workdir
    self._tb = None
    self._jsonl = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard"))
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in scalars.items()}
    for k, v in values.items():
      self._tb.add_scalar(k, v, global_step=step)
    self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
    self._jsonl.flush()

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Writes (H, W, 3) float images in [0, 1] to TensorBoard and to PNG files."""
    if not self.enabled:
      return
    sample_dir = os.path.join(self.workdir, "samples")
    os.makedirs(sample_dir, exist_ok=True)
    for name, img in images.items():
      img8 = (np.clip(np.asarray(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
      self._tb.add_image(name, img8, global_step=step, dataformats="HWC")
      Image.fromarray(img8).save(os.path.join(sample_dir, f"{name}_{step:08d}.png"))

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    with open(os.path.join(self.workdir, "config.json"), "w") as f:
      json.dump(dict(hparams), f, indent=2, sort_keys=True, default=str)
    self._tb.add_text("config", "```\n" + json.dumps(dict(hparams), indent=2, default=str)
                      + "\n```", global_step=0)

  def flush(self) -> None:
    if self.enabled:
      self._tb.flush()
      self._jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()
      self.enabled = False


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
  """Tiles a list of (N, H, W, 3) arrays as columns: one row per example.

  Returns:
    (N * H, len(rows) * W, 3) float32.
  """
  per_example = [np.concatenate([r[i] for r in rows], axis=1) for i in range(rows[0].shape[0])]
  return np.concatenate(per_example, axis=0)


def format_duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
  """Steps/s and ETA between log lines (a TF-free `ReportProgress`)."""

  def __init__(self, total_steps: int, start_step: int, now: float):
    self.total_steps = total_steps
    self._last_step = start_step
    self._last_time = now

  def update(self, step: int, now: float) -> dict[str, float]:
    dt = max(now - self._last_time, 1e-9)
    rate = (step - self._last_step) / dt
    self._last_step, self._last_time = step, now
    eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
    return {"steps_per_sec": rate, "eta_sec": eta}


def log_line(step: int, total: int, scalars: Mapping[str, float], rate: float,
             eta: float) -> None:
  parts = " ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items()))
  logging.info("step %d/%d | %s | %.3g steps/s | ETA %s", step, total, parts, rate,
               format_duration(eta))
