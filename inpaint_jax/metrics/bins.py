"""Hole-area bins of LaMa's evaluator (`saicinpainting/evaluation/evaluator.py`).

The hole fraction of a mask (mean of the 0/1 mask) falls into one of `n` equal bins of
[0, 1]: `searchsorted(edges, area, side="right") - 1`, with area 1 put in the last bin.
Bin names are LaMa's: "0-10%", "10-20%", ..., "90-100%".
"""

from __future__ import annotations

import math

import numpy as np


def bin_edges(n: int = 10) -> np.ndarray:
  """(n + 1,) edges 0, 1/n, ..., 1."""
  return np.linspace(0, 1, n + 1)


def bin_names(n: int = 10) -> list[str]:
  """LaMa's interval names, e.g. "0-10%" (more digits only when n > 10)."""
  edges = bin_edges(n)
  digits = max(0, math.ceil(math.log10(n)) - 1)
  pct = [f"{round(100 * e, digits):.{digits}f}" for e in edges]
  return [f"{pct[i]}-{pct[i + 1]}%" for i in range(n)]


def bin_index(areas: np.ndarray, n: int = 10) -> np.ndarray:
  """(N,) int bin of each hole fraction in (N,) `areas`."""
  idx = np.searchsorted(bin_edges(n), np.asarray(areas, np.float64), side="right") - 1
  return np.clip(idx, 0, n - 1)
