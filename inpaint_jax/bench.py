r"""Benchmarks: `python -m inpaint_jax.bench --config=configs/lama.py:big --mode=infer`.

Prints one JSON line. Modes:

  infer      one eval-mode generator pass (`inference.engine.predict`, with the composite).
  generator  one generator forward (train-mode BatchNorm) + backward of an L1 loss
             against the image + the configured generator optimiser update (Adam for
             LaMa): the case PyTorch training reference scripts time.
  train      one full iteration of the configured recipe (`train.train_step`: G and D
             steps, every loss term of the config).
  data       the input pipeline alone (`train.make_batches`): one batch with masks at
             the config's image size and batch, read in order through `iterate`.

`--size` and `--batch` override `data.image_size` and `batch_size` (BatchNorm groups
fall back to the whole batch when `batchnorm.group_size` does not divide it); `--dtype`
sets the top-level `dtype` field. Any `--config.<field>=...` override works as in
`inpaint_jax.main`. Everything goes through `inpaint_jax.system`, so every registered
family works.

Output fields: `median_s` / `min_s` / `max_s` over `--runs` timed calls after
`--warmup` untimed ones (each ended with `block_until_ready`), `compile_s` (lowering +
XLA compilation), `gflop` (XLA's cost analysis of the compiled function: convolutions,
dots and elementwise ops; 1 multiply-add = 2 FLOP), `gflops_per_s` (gflop / median_s),
`peak_mem_mb` (XLA's buffer assignment for the compiled function: arguments + outputs +
temporaries - donated aliases; for `data` the process's peak resident memory),
`rss_peak_mb`, `cpu_util` (this process's CPU time / wall time / cores over the timed
runs, median: well below 1 on an idle multi-core CPU means the work did not use all
cores, and `loadavg` shows whether other processes competed), `device_kind`, and the
run's settings.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from inpaint_jax import config_lib

MODES = ("infer", "generator", "train", "data")
DTYPES = ("float32", "bfloat16")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config: a file FILE.py[:ARG] (configs/lama.py:big) or a packaged config "
    "by name NAME[:ARG] (lama:big); --config.a.b=VALUE overrides a field.", lock_config=False)
_MODE = flags.DEFINE_enum("mode", "infer", list(MODES), "What to time.")
_SIZE = flags.DEFINE_integer("size", None, "Image side (default: the config's data.image_size).")
_BATCH = flags.DEFINE_integer("batch", None, "Batch size (default: the config's batch_size).")
_DTYPE = flags.DEFINE_enum("dtype", None, list(DTYPES),
                           "Computation dtype (default: the config's dtype field).")
_RUNS = flags.DEFINE_integer("runs", 5, "Timed runs (the median is reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed runs after compilation.")


def configure(config, *, mode: str, size: int | None = None, batch: int | None = None,
              dtype: str | None = None):
  """Applies the bench flags to a (copied) config and returns it."""
  config = config.copy_and_resolve_references()
  config.unlock()
  if size is not None:
    config.data.image_size = int(size)
  if batch is not None:
    config.batch_size = int(batch)
  if dtype is not None:
    config.dtype = dtype
  group = int(config.get("batchnorm", {}).get("group_size", 0) or 0)
  if group and config.batch_size % group:
    config.batchnorm.group_size = 0
  if mode == "data":
    # One process of one: the rows a single host builds.
    config.data.prefetch = max(int(config.data.get("prefetch", 2)), 1)
  return config


def _cpu_seconds() -> float:
  t = os.times()
  return t.user + t.system


def _loadavg() -> float | None:
  try:
    with open("/proc/loadavg", encoding="ascii") as f:
      return float(f.read().split()[0])
  except OSError:
    return None


def _time_runs(step: Callable[[], Any], runs: int, warmup: int) -> dict[str, Any]:
  """Times `step` (which must block until its result is ready)."""
  for _ in range(warmup):
    step()
  times, utils = [], []
  ncpu = os.cpu_count() or 1
  for _ in range(runs):
    c0, t0 = _cpu_seconds(), time.perf_counter()
    step()
    dt = time.perf_counter() - t0
    times.append(dt)
    utils.append((_cpu_seconds() - c0) / max(dt, 1e-9) / ncpu)
  return dict(median_s=statistics.median(times), min_s=min(times), max_s=max(times),
              times_s=[round(t, 5) for t in times], cpu_util=round(statistics.median(utils), 3))


def _memory_mb(compiled) -> float | None:
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (not every backend implements it)
    return None
  if m is None:
    return None
  total = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
           - m.alias_size_in_bytes)
  return total / 2**20


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", 0.0))


def _model_fn(config, mode: str) -> tuple[Callable, tuple, Callable[[tuple, Any], tuple]]:
  """(jitted fn, its first arguments, how the next call's arguments follow from an output)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from inpaint_jax import system as system_lib  # pylint: disable=g-import-not-at-top
  from inpaint_jax import train as train_lib  # pylint: disable=g-import-not-at-top
  from inpaint_jax.inference import engine  # pylint: disable=g-import-not-at-top
  from inpaint_jax.models import api  # pylint: disable=g-import-not-at-top

  system = system_lib.build(config)
  state = jax.jit(functools.partial(system_lib.init_state, system))(
      jax.random.PRNGKey(config.seed))
  n, s = config.batch_size, config.data.image_size
  key_img, key_mask = jax.random.split(jax.random.PRNGKey(1))
  image = jax.random.uniform(key_img, (n, s, s, 3), jnp.float32)
  mask = (jax.random.uniform(key_mask, (n, s, s, 1)) < 0.3).astype(jnp.float32)
  g_model = system.nets["g"]

  if mode == "infer":
    variables = system_lib.generator_variables(state)
    fn = jax.jit(functools.partial(engine.predict, api.get_adapter(config), g_model))
    return fn, (variables, image, mask), lambda args, out: args

  if mode == "generator":
    opt = system.optimizers["g"]
    g = state.nets["g"]
    group = int(config.batchnorm.get("group_size", 0) or 0)

    def g_step(params, collections, opt_state, step, x, m):
      from inpaint_jax.models import norm  # pylint: disable=g-import-not-at-top

      def loss_fn(p):
        with norm.batch_stat_groups(group):
          out, cols = train_lib.apply_net(g_model, {"params": p, **collections}, x, m,
                                          train=True)
        return jnp.mean(jnp.abs(out["pred"] - x)), cols

      (loss, cols), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      params, opt_state = opt.update(grads, opt_state, params, opt.schedule(step))
      return params, cols, opt_state, step + 1, loss

    fn = jax.jit(g_step, donate_argnums=(0, 1, 2))
    args = (g.params, g.collections, g.opt_state, state.step, image, mask)
    return fn, args, lambda args, out: out[:4] + args[4:]

  if mode == "train":
    schedule = train_lib.Schedule(config, system)
    plan = schedule.plan(0)
    k = schedule.batches_per_step
    batches = {"image": jnp.stack([image] * k), "mask": jnp.stack([mask] * k)}
    frozen_vars = system.load_frozen()
    fn = jax.jit(functools.partial(train_lib.train_step, system=system, plan=plan),
                 donate_argnums=0)
    return fn, (state, batches, frozen_vars), lambda args, out: (out[0],) + args[1:]

  raise ValueError(f"unknown mode {mode!r}")


def prepare_model(config, mode: str) -> tuple[Callable[[], None], dict[str, Any]]:
  """Compiles one model mode; returns (a blocking call of one step, compile fields).

  Each call feeds the previous call's outputs (state, optimiser state) back in, as a
  training loop does, so donated buffers are reused.
  """
  import jax  # pylint: disable=g-import-not-at-top

  fn, args, next_args = _model_fn(config, mode)
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  state = {"args": args}

  def step():
    out = compiled(*state["args"])
    jax.block_until_ready(out)
    state["args"] = next_args(state["args"], out)

  gflop = _flops(compiled) / 1e9
  return step, dict(compile_s=round(compile_s, 3), gflop=round(gflop, 3),
                    peak_mem_mb=_round(_memory_mb(compiled)))


def run_model(config, mode: str, *, runs: int = 5, warmup: int = 2) -> dict[str, Any]:
  """Compiles and times one model mode; returns the result fields."""
  step, info = prepare_model(config, mode)
  result = _time_runs(step, runs, warmup)
  result.update(info, gflops_per_s=round(info["gflop"] / result["median_s"], 2))
  return result


def run_data(config, *, runs: int = 5, warmup: int = 2) -> dict[str, Any]:
  """Times the input pipeline: seconds per batch read in order through `iterate`."""
  from inpaint_jax import train as train_lib  # pylint: disable=g-import-not-at-top

  t0 = time.perf_counter()
  batches = train_lib.make_batches(config)
  it = batches.iterate(0)
  try:
    next(it)  # the first batch includes loading the source
    setup_s = time.perf_counter() - t0
    result = _time_runs(lambda: next(it), runs, warmup)
  finally:
    it.close()
    batches.close()
  result.update(compile_s=round(setup_s, 3), gflop=0.0, gflops_per_s=0.0,
                peak_mem_mb=_round(_rss_peak_mb()),
                batches_per_s=round(1.0 / result["median_s"], 2))
  return result


def _rss_peak_mb() -> float:
  kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _round(x: float | None, nd: int = 1) -> float | None:
  return None if x is None else round(x, nd)


def bench(config, *, mode: str, size: int | None = None, batch: int | None = None,
          dtype: str | None = None, runs: int = 5, warmup: int = 2) -> dict[str, Any]:
  """Runs one benchmark and returns its JSON-ready result."""
  import jax  # pylint: disable=g-import-not-at-top

  if mode not in MODES:
    raise ValueError(f"--mode={mode!r} is not accepted; accepted: {', '.join(MODES)}")
  if runs < 1 or warmup < 0:
    raise ValueError(f"--runs must be >= 1 and --warmup >= 0, got {runs} and {warmup}")
  config = configure(config, mode=mode, size=size, batch=batch, dtype=dtype)
  load0 = _loadavg()
  if mode == "data":
    result = run_data(config, runs=runs, warmup=warmup)
  else:
    result = run_model(config, mode, runs=runs, warmup=warmup)
  for k in ("median_s", "min_s", "max_s"):
    result[k] = round(result[k], 5)
  device = jax.devices()[0]
  header = dict(mode=mode, variant=config.get("variant", ""),
                generator=config.generator.get("name", ""), size=config.data.image_size,
                batch=config.batch_size, dtype=str(config.get("dtype", "float32")),
                runs=runs, device_kind=device.device_kind, platform=device.platform,
                device_count=jax.device_count(), cpu_count=os.cpu_count(),
                xla_flags=os.environ.get("XLA_FLAGS", ""))
  return {**header, **result, "rss_peak_mb": _round(_rss_peak_mb()),
          "loadavg": [load0, _loadavg()]}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=lama:big")
  result = bench(_CONFIG.value, mode=_MODE.value, size=_SIZE.value, batch=_BATCH.value,
                 dtype=_DTYPE.value, runs=_RUNS.value, warmup=_WARMUP.value)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  app.run(main, argv=config_lib.absl_argv(sys.argv))
