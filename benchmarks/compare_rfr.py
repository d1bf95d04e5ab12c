r"""RFR-Net: JAX (`inpaint_jax.bench`) against a plain-PyTorch re-creation, in one process.

  python benchmarks/compare_rfr.py --cases=generator:64,infer:256,generator:256

As `compare_lama.py`: for each case both sides are compiled / warmed up, then timed
alternately (JAX, torch, JAX, ...), and one JSON line per case gives the medians, the
spread, the JAX / PyTorch ratio over the clean runs (other processes below `--max_other`
of the machine) and GFLOP/s. The PyTorch side is `torch_rfr.RFRNet` (the official module
tree, checked against the golden file with `python benchmarks/torch_rfr.py --check
tests/data/rfr_small.npz`) holding our JAX initial weights, copied through the converter
(`models.rfr.torch_keys.variables_to_torch`); before timing, each case checks that the
two eval-mode outputs agree (`max_abs_diff` in the JSON line).

Cases: `infer` = one eval-mode pass (JAX: `inference.engine.predict`, with the composite;
torch: `inference_mode` forward + composite); `generator` = train-mode forward + L1 loss
against the image + backward + Adam (lr 2e-4, RFR-Net's generator optimiser, no
clipping), which is what `--mode=generator` times.

`gflop` is XLA's cost analysis of the jitted step with the recurrence loop unrolled
(XLA counts a while loop's body once; the timed step keeps the loop).

Not part of the package or of the tests; needs torch.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os

import compare_lama
import numpy as np
import torch
import torch_rfr


def torch_step(net: torch.nn.Module, mode: str, image: np.ndarray, hole: np.ndarray):
  """One timed step of `net` on NHWC numpy image (N, H, W, 3) and hole mask (1 = hole)."""
  img = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
  known = 1.0 - torch.from_numpy(np.ascontiguousarray(hole.transpose(0, 3, 1, 2)))
  known = known.expand(-1, 3, -1, -1).contiguous()
  if mode == "infer":
    net.eval()

    def step():
      with torch.inference_mode():
        pred = net(img * known, known)
        return img * known + pred * (1 - known)
    return step
  net.train()
  opt = torch.optim.Adam(net.parameters(), lr=2e-4)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = (net(img * known, known) - img).abs().mean()
    loss.backward()
    opt.step()
  return step


def unrolled_gflop(config, mode: str) -> float:
  """XLA's FLOP count of the step with the n_rec recurrences unrolled (no while loop)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  from inpaint_jax import bench  # pylint: disable=g-import-not-at-top

  scan = nn.scan

  def unrolled(*args, **kwargs):
    return scan(*args, **kwargs, unroll=kwargs["length"])

  nn.scan = unrolled
  try:
    fn, args, _ = bench._model_fn(config, mode)  # pylint: disable=protected-access
    compiled = fn.lower(*args).compile()
  finally:
    nn.scan = scan
  return bench._flops(compiled) / 1e9  # pylint: disable=protected-access


def setup(config):
  """(JAX generator variables, torch net with the same weights, image, hole) for a config."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from inpaint_jax import system as system_lib  # pylint: disable=g-import-not-at-top
  from inpaint_jax.models.rfr import torch_keys  # pylint: disable=g-import-not-at-top

  system = system_lib.build(config)
  state = jax.jit(functools.partial(system_lib.init_state, system))(
      jax.random.PRNGKey(config.seed))
  variables = system_lib.generator_variables(state)
  g = config.generator
  net = torch_rfr.RFRNet(ngf=g.ngf, rec_ksize=g.rec_ksize, n_rec=g.n_rec, tail_ch=g.tail_ch,
                         layer_size=g.layer_size)
  sd = torch_keys.variables_to_torch(variables)
  net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
  # The inputs `bench` times.
  n, s = config.batch_size, config.data.image_size
  key_img, key_mask = jax.random.split(jax.random.PRNGKey(1))
  image = jax.random.uniform(key_img, (n, s, s, 3), jnp.float32)
  hole = (jax.random.uniform(key_mask, (n, s, s, 1)) < 0.3).astype(jnp.float32)
  return system, variables, net, np.asarray(image), np.asarray(hole)


def max_abs_diff(system, variables, net, image, hole) -> float:
  """max |JAX eval pred - torch eval pred| on the bench inputs."""
  g_model = system.nets["g"]
  pred = np.asarray(g_model.apply(variables, image, hole, train=False)["pred"])
  net.eval()
  img = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
  known = (1.0 - torch.from_numpy(np.ascontiguousarray(hole.transpose(0, 3, 1, 2)))).expand(
      -1, 3, -1, -1).contiguous()
  with torch.inference_mode():
    ref = net(img * known, known).numpy().transpose(0, 2, 3, 1)
  return float(np.abs(pred - ref).max())


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--config", default="configs/rfr.py")
  ap.add_argument("--variant", default="paris")
  ap.add_argument("--cases", default="generator:64,infer:256,generator:256")
  ap.add_argument("--batch", type=int, default=1)
  ap.add_argument("--runs", type=int, default=5)
  ap.add_argument("--warmup", type=int, default=1)
  ap.add_argument("--max_other", type=float, default=0.05)
  ap.add_argument("--pause", type=float, default=0.2, help="seconds between runs")
  ap.add_argument("--threads", type=int, default=os.cpu_count())
  ap.add_argument("--skip_matmul", action="store_true")
  ap.add_argument("--skip_flops", action="store_true",
                  help="skip the unrolled compile that counts the FLOPs")
  args = ap.parse_args()

  torch.set_num_threads(args.threads)
  from inpaint_jax import bench  # pylint: disable=g-import-not-at-top

  peak = None
  if not args.skip_matmul:
    peak = compare_lama.matmul_peak(args.runs)
    print(json.dumps(peak), flush=True)
  spec = importlib.util.spec_from_file_location("bench_config", args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  base = module.get_config(args.variant)
  for case in args.cases.split(","):
    mode, size = case.split(":")
    size = int(size)
    config = bench.configure(base, mode=mode, size=size, batch=args.batch)
    system, variables, net, image, hole = setup(config)
    diff = max_abs_diff(system, variables, net, image, hole)
    gflop = None if args.skip_flops else unrolled_gflop(config, mode)
    jax_step, info = bench.prepare_model(config, mode)
    t_step = torch_step(net, mode, image, hole)
    js, ts = compare_lama.alternate(jax_step, t_step, args)
    out = dict(case=f"rfr {args.variant} {mode} {size} b{args.batch}", jax=js, torch=ts,
               ratio=round(js["median_s"] / ts["median_s"], 3), max_abs_diff=diff,
               compile_s=info["compile_s"], gflop=gflop)
    compare_lama.add_rates(out, gflop, peak)
    print(json.dumps(out), flush=True)
    del net, t_step, jax_step


if __name__ == "__main__":
  main()
