"""Summary scores built from several metrics, for checkpoint selection.

LaMa selects checkpoints by `ssim_fid100_f1` (and reports `lpips_fid100_f1`):
the F1-style harmonic mean of a similarity in [0, 1] and
f = max(0, 100 - FID) / 100:

  ssim_fid100_f1 = 2 s f / (s + f + 1e-3)
  lpips_fid100_f1 = 2 (1 - lpips) f / ((1 - lpips) + f + 1e-3)
"""

from __future__ import annotations

from collections.abc import Mapping

# Derived score -> the metrics it needs.
DERIVED = {"ssim_fid100_f1": ("ssim", "fid"), "lpips_fid100_f1": ("lpips", "fid")}
# Metrics where lower is better; every other one is maximised.
LOWER_IS_BETTER = ("l1", "lpips", "fid", "mse")


def fid100(fid: float) -> float:
  return max(0.0, 100.0 - fid) / 100.0


def f1(a: float, b: float) -> float:
  return 2.0 * a * b / (a + b + 1e-3)


def derived(scores: Mapping[str, float]) -> dict[str, float]:
  """The derived scores computable from `scores` ({metric name: value})."""
  out = {}
  if "ssim" in scores and "fid" in scores:
    out["ssim_fid100_f1"] = f1(float(scores["ssim"]), fid100(float(scores["fid"])))
  if "lpips" in scores and "fid" in scores:
    out["lpips_fid100_f1"] = f1(1.0 - float(scores["lpips"]), fid100(float(scores["fid"])))
  return out


def needs(name: str) -> tuple[str, ...]:
  """The base metrics a selection metric needs (itself for a base metric)."""
  return DERIVED.get(name, (name,))


def mode(name: str) -> str:
  """"min" or "max": which direction is better for `name`."""
  return "min" if name in LOWER_IS_BETTER else "max"
