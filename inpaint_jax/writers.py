"""Metric and image writers that need no TensorFlow.

clu 0.0.12's `metric_writers` and `periodic_actions` import TensorFlow (about
1.3 GB installed), which nothing else in training needs. This module writes the
same artefacts without it: TensorBoard event files through tensorboardX, a
`metrics.jsonl` file and PNG sample grids (with a row of column labels on top). Only
process 0 writes; other processes get a writer whose methods do nothing. The progress lines
of the log are `inpaint_jax.progress`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont


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


def image_grid(columns: Sequence[np.ndarray],
               labels: Sequence[str | Sequence[str]] | None = None) -> np.ndarray:
  """Tiles (N, H, W, 3) arrays as columns, one row per example, under optional labels.

  Args:
    columns: C arrays (N, H, W, 3) in [0, 1].
    labels: None, or one label per column: a string, or alternatives longest first, of
      which the first that fits the column width is drawn (see `label_row`).

  Returns:
    (N * H, C * W, 3) without labels; with labels, a white `label_row` of LABEL_HEIGHT
    rows on top and the same N * H rows of images below it.
  """
  per_example = [np.concatenate([c[i] for c in columns], axis=1)
                 for i in range(columns[0].shape[0])]
  grid = np.concatenate(per_example, axis=0)
  if labels is None:
    return grid
  if len(labels) != len(columns):
    raise ValueError(f"{len(labels)} labels for {len(columns)} columns")
  return np.concatenate([label_row(labels, columns[0].shape[2]), grid], axis=0)


LABEL_HEIGHT = 14  # Pillow's default font is about 11 px tall, plus a small margin


def label_row(labels: Sequence[str | Sequence[str]], column_width: int) -> np.ndarray:
  """Black text on white, centred over each column, in Pillow's default font.

  Uses no font file, so it works wherever Pillow is installed. A label given as
  alternatives uses the first that fits `column_width`; one that fits nowhere is drawn
  from its left end and cut at the column's edge.

  Returns:
    (LABEL_HEIGHT, len(labels) * column_width, 3) float32 in [0, 1].
  """
  font = ImageFont.load_default()
  row = Image.new("RGB", (len(labels) * column_width, LABEL_HEIGHT), "white")
  for i, label in enumerate(labels):
    options = [label] if isinstance(label, str) else list(label)
    text = next((t for t in options if font.getlength(t) <= column_width - 2), options[-1])
    # Each label is drawn on its own tile, so a long one is cut at its column's edge.
    tile = Image.new("RGB", (column_width, LABEL_HEIGHT), "white")
    x = max((column_width - font.getlength(text)) / 2, 0)
    ImageDraw.Draw(tile).text((x, 1), text, fill="black", font=font)
    row.paste(tile, (i * column_width, 0))
  return np.asarray(row, np.float32) / 255.0
