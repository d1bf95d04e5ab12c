"""XLA CPU settings the package applies before JAX starts its CPU backend.

XLA reads `XLA_FLAGS` once, when the first backend is created, so the package sets
its defaults on import (`inpaint_jax/__init__.py`), before any model code runs.

What is set and why (measured on a 2-core x86 CPU with jax 0.10.2; the README's
`## Performance` section has the figures and the commands):

* `--xla_cpu_experimental_ynn_fusion_type=reduce`. jaxlib 0.10 routes convolutions
  and dots through YNNPACK fusions by default. On LaMa's 3x3 convolutions of 32x32 maps
  with 128-512 channels, YNNPACK runs at ~65-80 GFLOP/s where XLA's own (Eigen)
  convolution reaches ~110, which made the big-lama eval pass 1.4-1.9x slower than
  PyTorch. Keeping YNNPACK for reductions only (where it is faster than XLA's loop
  emitter, e.g. BatchNorm statistics) gives the best of both.

The settings only touch the CPU backend; GPU and TPU programs compile as before.
Nothing is changed when the user already names the flag in `XLA_FLAGS`, when
`INPAINT_JAX_XLA_DEFAULTS=0`, or for a jaxlib outside the tested minor version
(an unknown flag would abort XLA at start-up).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import MutableMapping

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
YNN_DEFAULT = "reduce"
# jaxlib minor versions whose XLA has the flag (tested); others are left alone.
TESTED_JAXLIB = ("0.10.",)
OPT_OUT = "INPAINT_JAX_XLA_DEFAULTS"


def _jaxlib_version() -> str | None:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return None


def cpu_flags(environ: MutableMapping[str, str], jaxlib_version: str | None) -> str | None:
  """The XLA_FLAGS value with the package defaults added, or None to leave it unchanged."""
  if environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off"):
    return None
  if jaxlib_version is None or not jaxlib_version.startswith(TESTED_JAXLIB):
    return None
  flags = environ.get("XLA_FLAGS", "")
  if YNN_FLAG.lstrip("-") in flags:
    return None
  return f"{flags} {YNN_FLAG}={YNN_DEFAULT}".strip()


def apply(environ: MutableMapping[str, str] | None = None) -> None:
  """Adds the defaults to `environ["XLA_FLAGS"]` (default: `os.environ`)."""
  environ = os.environ if environ is None else environ
  flags = cpu_flags(environ, _jaxlib_version())
  if flags is not None:
    environ["XLA_FLAGS"] = flags
