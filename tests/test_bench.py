"""`inpaint_jax.bench`: the JSON fields of every mode on the tiny config (not timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest

from inpaint_jax import bench
from tests.helpers import FAST_COMPILE_ENV, REPO, tiny_config

REQUIRED = {"median_s", "min_s", "max_s", "compile_s", "gflop", "gflops_per_s", "peak_mem_mb",
            "device_kind", "mode", "size", "batch", "dtype", "runs", "cpu_util", "loadavg",
            "xla_flags"}


@pytest.fixture(autouse=True, scope="module")
def _fast_compile():
  """The tiny programs compile faster than they run; skip XLA's optimisation passes."""
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


@pytest.mark.parametrize("mode", bench.MODES)
def test_bench_fields(mode):
  result = bench.bench(tiny_config(), mode=mode, size=32, batch=2, runs=2, warmup=1)
  assert REQUIRED <= set(result), REQUIRED - set(result)
  assert result["mode"] == mode and result["size"] == 32 and result["batch"] == 2
  assert len(result["times_s"]) == 2
  assert result["min_s"] <= result["median_s"] <= result["max_s"]
  json.dumps(result)  # JSON-ready
  if mode == "data":
    assert result["batches_per_s"] > 0
  else:
    assert result["gflop"] > 0 and result["peak_mem_mb"] > 0


def test_bench_bfloat16_fields():
  result = bench.bench(tiny_config(), mode="generator", size=32, batch=2, dtype="bfloat16",
                       runs=1, warmup=0)
  assert result["dtype"] == "bfloat16" and result["gflop"] > 0


def test_bench_cli_prints_one_json_line():
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **FAST_COMPILE_ENV}
  out = subprocess.run(
      [sys.executable, "-m", "inpaint_jax.bench", "--config=configs/lama.py:tiny",
       "--mode=infer", "--size=32", "--batch=1", "--runs=1", "--warmup=0"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True)
  lines = [line for line in out.stdout.splitlines() if line.strip()]
  assert len(lines) == 1, out.stdout
  result = json.loads(lines[0])
  assert REQUIRED <= set(result)
  assert result["variant"] == "tiny" and result["dtype"] == "float32"


def test_bench_rejects_bad_mode():
  with pytest.raises(ValueError, match="--mode"):
    bench.bench(tiny_config(), mode="nope")
