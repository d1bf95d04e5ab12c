r"""JAX (`inpaint_jax.bench`) against the PyTorch reference, interleaved in one process.

  python benchmarks/compare_lama.py --variant=big --cases=infer:256,infer:512,generator:256

For each case both sides are compiled / warmed up, then timed alternately (JAX, torch,
JAX, torch, ...), so that load from other processes hits both alike. For every run the
script records its wall time, its own CPU time and the CPU time the rest of the machine
used meanwhile (`/proc/stat`), and prints one JSON line per case with the medians, the
spread and the JAX / PyTorch ratio over the clean runs (other processes below
`--max_other` of the machine's capacity; all runs if too few are clean). The fp32
matmul peak (2048^2, both libraries) is measured first.

Cases: `infer` = one eval-mode pass (torch: `inference_mode`); `generator` = train-mode
forward + L1 loss against the image + backward + gradient clipping at norm 1 + Adam
(lr 1e-3), which is what `--mode=generator` times with LaMa's generator optimiser.

Not part of the package or of the tests; needs torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time

import numpy as np
import torch
import torch_lama


def _proc_busy() -> float:
  """Busy seconds of the whole machine (all CPUs, steal included) from /proc/stat."""
  with open("/proc/stat", encoding="ascii") as f:
    vals = [int(v) for v in f.readline().split()[1:]]
  idle = vals[3] + vals[4]
  return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
  t = os.times()
  return t.user + t.system


def timed(fn) -> dict[str, float]:
  b0, c0, t0 = _proc_busy(), _own_cpu(), time.perf_counter()
  fn()
  wall = time.perf_counter() - t0
  own = _own_cpu() - c0
  other = max(_proc_busy() - b0 - own, 0.0)
  ncpu = os.cpu_count() or 1
  return dict(wall=wall, util=own / wall / ncpu, other=other / wall / ncpu)


def summarise(runs: list[dict[str, float]], max_other: float) -> dict[str, object]:
  clean = [r for r in runs if r["other"] <= max_other]
  use = clean if len(clean) >= 3 else runs
  w = [r["wall"] for r in use]
  return dict(median_s=round(statistics.median(w), 4), min_s=round(min(w), 4),
              max_s=round(max(w), 4), n=len(use), n_runs=len(runs),
              util=round(statistics.median(r["util"] for r in use), 3),
              other=round(max(r["other"] for r in use), 3),
              times=[round(r["wall"], 4) for r in runs])


def torch_step(net: torch.nn.Module, mode: str, size: int, batch: int):
  g = torch.Generator().manual_seed(1)
  img = torch.rand(batch, 3, size, size, generator=g)
  mask = (torch.rand(batch, 1, size, size, generator=g) < 0.3).float()
  x = torch.cat([img * (1 - mask), mask], dim=1)
  if mode == "infer":
    net.eval()

    def step():
      with torch.inference_mode():
        net(x)
    return step
  net.train()
  opt = torch.optim.Adam(net.parameters(), lr=1e-3)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = (net(x) - img).abs().mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
  return step


def matmul_peak(runs: int) -> dict[str, float]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  n = 2048
  flop = 2 * n ** 3
  a = torch.rand(n, n)
  b = torch.rand(n, n)
  ja = jnp.asarray(a.numpy())
  jb = jnp.asarray(b.numpy())
  jdot = jax.jit(jnp.dot)
  jdot(ja, jb).block_until_ready()
  a @ b
  t_torch, t_jax = [], []
  for _ in range(runs):
    t_jax.append(timed(lambda: jdot(ja, jb).block_until_ready()))
    t_torch.append(timed(lambda: a @ b))
  med = lambda rs: statistics.median(r["wall"] for r in rs)
  return dict(case="matmul_2048_fp32", torch_gflops=round(flop / med(t_torch) / 1e9, 1),
              jax_gflops=round(flop / med(t_jax) / 1e9, 1),
              torch_best_gflops=round(flop / min(r["wall"] for r in t_torch) / 1e9, 1),
              jax_best_gflops=round(flop / min(r["wall"] for r in t_jax) / 1e9, 1))


def alternate(jax_step, t_step, args: argparse.Namespace
              ) -> tuple[dict[str, object], dict[str, object]]:
  """Warms both steps up, then times them alternately; (JAX summary, torch summary).

  `args` gives `warmup`, `runs`, `pause` (seconds before each run) and `max_other`.
  """
  for _ in range(args.warmup):
    jax_step()
    t_step()
  jr, tr = [], []
  for _ in range(args.runs):
    time.sleep(args.pause)
    jr.append(timed(jax_step))
    time.sleep(args.pause)
    tr.append(timed(t_step))
  return summarise(jr, args.max_other), summarise(tr, args.max_other)


def add_rates(out: dict[str, object], gflop: float | None,
              peak: dict[str, float] | None) -> None:
  """Adds GFLOP/s of both sides (and % of the torch matmul peak) to a case's JSON line."""
  if not gflop:
    return
  out["jax_gflops"] = round(gflop / out["jax"]["median_s"], 1)
  out["torch_gflops"] = round(gflop / out["torch"]["median_s"], 1)
  if peak:
    out["jax_pct_peak"] = round(100 * out["jax_gflops"] / peak["torch_gflops"], 1)
    out["torch_pct_peak"] = round(100 * out["torch_gflops"] / peak["torch_gflops"], 1)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--config", default="configs/lama.py")
  ap.add_argument("--variant", default="big")
  ap.add_argument("--cases", default="infer:256,infer:512,generator:256")
  ap.add_argument("--batch", type=int, default=1)
  ap.add_argument("--runs", type=int, default=7)
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument("--max_other", type=float, default=0.05)
  ap.add_argument("--pause", type=float, default=0.2, help="seconds between runs")
  ap.add_argument("--threads", type=int, default=os.cpu_count())
  ap.add_argument("--skip_matmul", action="store_true")
  args = ap.parse_args()

  torch.set_num_threads(args.threads)
  from inpaint_jax import bench  # pylint: disable=g-import-not-at-top

  peak = None
  if not args.skip_matmul:
    peak = matmul_peak(args.runs)
    print(json.dumps(peak), flush=True)
  spec = importlib.util.spec_from_file_location("bench_config", args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  base = module.get_config(args.variant)
  g = base.generator
  for case in args.cases.split(","):
    mode, size = case.split(":")
    size = int(size)
    config = bench.configure(base, mode=mode, size=size, batch=args.batch)
    jax_step, info = bench.prepare_model(config, mode)
    torch.manual_seed(0)
    net = torch_lama.FFCResNetGenerator(ngf=g.ngf, n_downsampling=g.n_downsampling,
                                        n_blocks=g.n_blocks, ratio=g.ratio_g)
    t_step = torch_step(net, mode, size, args.batch)
    js, ts = alternate(jax_step, t_step, args)
    out = dict(case=f"{args.variant} {mode} {size} b{args.batch}", jax=js, torch=ts,
               ratio=round(js["median_s"] / ts["median_s"], 3), gflop=info["gflop"])
    add_rates(out, info["gflop"], peak)
    print(json.dumps(out), flush=True)
    del net, t_step, jax_step
    np.random.seed(0)


if __name__ == "__main__":
  main()
