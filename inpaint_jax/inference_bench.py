r"""Inference figures with random weights: latency, folder throughput, refinement memory.

  python -m inpaint_jax.inference_bench --variant big --what latency --size 512
  python -m inpaint_jax.inference_bench --variant big --what folder --size 512 --images 8
  python -m inpaint_jax.inference_bench --variant big --what refine_memory --size 1024

`latency`: median seconds of the jitted eval pass + composite (batch 1) after a warm-up.
`folder`: writes a random model directory and N random image/mask pairs, runs the inpaint
command's folder mode in a subprocess, and prints its images/s line. `refine_memory`: XLA's
memory analysis of one refinement step at the finest level (what the device must hold:
arguments, outputs and temporaries), and with `--run` the whole refinement's peak resident
memory (VmHWM).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import optax
from PIL import Image

from inpaint_jax import errors
from inpaint_jax import system as system_lib
from inpaint_jax.config_lib import load_config_file
from inpaint_jax.inference import engine as inference
from inpaint_jax.models.lama import refine
from inpaint_jax.weights import model_dir


def _config(variant: str):
  try:
    with errors.as_user_errors():
      return load_config_file(f"lama:{variant}")
  except errors.UserError as e:
    errors.exit_with(f"--variant {variant}: {e}")


def random_generator(variant: str):
  config = _config(variant)
  g_model = system_lib.build(config).nets["g"]
  image = np.zeros((1, 64, 64, 3), np.float32)
  mask = np.zeros((1, 64, 64, 1), np.float32)
  variables = jax.jit(lambda r: g_model.init({"params": r}, image, mask, train=False))(
      jax.random.PRNGKey(0))
  return config, g_model, jax.device_get(variables)


def _sample(size: int, seed: int):
  rng = np.random.default_rng(seed)
  image = rng.random((size, size, 3)).astype(np.float32)
  mask = np.zeros((size, size, 1), np.float32)
  mask[size // 4: size // 2, size // 5: size // 2 + size // 5] = 1
  return image, mask


def _vmhwm_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM"):
        return int(line.split()[1]) / 1024
  return float("nan")


def main(argv: list[str] | None = None) -> None:
  p = errors.ArgumentParser(
      "python -m inpaint_jax.inference_bench",
      "Inference figures of a LaMa variant with random weights: eval-pass latency, the inpaint "
      "command's folder throughput, or the memory of LaMa's feature refinement.",
      epilog="examples:\n"
             "  python -m inpaint_jax.inference_bench --variant big --what latency --size 512\n"
             "  python -m inpaint_jax.inference_bench --variant big --what refine_memory "
             "--size 1024")
  p.add_argument("--variant", default="big", metavar="NAME",
                 help="variant of the lama config (fourier, big, demo, tiny)")
  p.add_argument("--what", choices=("latency", "folder", "refine_memory"), default="latency",
                 help="what to measure")
  p.add_argument("--size", type=int, default=512, metavar="S", help="image side in pixels")
  p.add_argument("--repeats", type=int, default=3, metavar="N", help="latency: timed passes")
  p.add_argument("--images", type=int, default=8, metavar="N", help="folder: image/mask pairs")
  p.add_argument("--run", action="store_true", help="refine_memory: also run the refinement")
  p.add_argument("--iters", type=int, default=15, metavar="N",
                 help="refine_memory --run: Adam iterations")
  p.add_argument("--compare", action="store_true",
                 help="refine_memory: also analyse the step without rematerialisation")
  args = p.parse_args(argv)

  config, g_model, variables = random_generator(args.variant)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f}", flush=True)
  if args.what == "latency":
    engine = inference.Inpainter(config, g_model, variables)
    image, mask = _sample(args.size, 0)
    t = time.perf_counter()
    engine(image, mask)
    print(f"compile + first pass: {time.perf_counter() - t:.2f} s", flush=True)
    times = []
    for _ in range(args.repeats):
      t = time.perf_counter()
      engine(image, mask)
      times.append(time.perf_counter() - t)
    print(f"latency {args.variant} {args.size}x{args.size}: median {statistics.median(times):.3f}"
          f" s over {args.repeats} (min {min(times):.3f} s)")
  elif args.what == "folder":
    with tempfile.TemporaryDirectory() as tmp:
      md = os.path.join(tmp, "md")
      model_dir.save(md, config, {"g": variables}, family="lama")
      src = os.path.join(tmp, "in")
      os.makedirs(src)
      for i in range(args.images):
        image, mask = _sample(args.size, i)
        Image.fromarray((image * 255).astype(np.uint8)).save(os.path.join(src, f"{i:03d}.png"))
        Image.fromarray((mask[..., 0] * 255).astype(np.uint8)).save(
            os.path.join(src, f"{i:03d}_mask000.png"))
      # The command runs as users run it, in its own interpreter.
      subprocess.run([sys.executable, "-m", "inpaint_jax.inpaint", "--checkpoint", md,
                      "--input_dir", src, "--output_dir", os.path.join(tmp, "out")], check=True)
  else:
    shape = refine.LamaShape.from_config(config)
    image, mask = _sample(args.size, 0)
    z = refine._front(shape, variables, image[None], mask[None])  # pylint: disable=protected-access
    h = args.size
    ref = np.zeros((1, h // 2, h // 2, 3), np.float32)
    for remat in ((True, False) if args.compare else (True,)):
      lowered = refine.refine_step.lower(shape, variables, z, optax.adam(0.002).init(z),
                                         image[None], mask[None], ref, ref[..., :1],
                                         orig_hw=(h, h), lr=0.002, remat=remat)
      mem = lowered.compile().memory_analysis()
      total = (mem.argument_size_in_bytes + mem.output_size_in_bytes
               + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
      print(f"refine step {args.variant} {h}x{h} remat={remat}: temporaries "
            f"{mem.temp_size_in_bytes / 2**30:.2f} GiB, arguments "
            f"{mem.argument_size_in_bytes / 2**30:.2f} GiB, total {total / 2**30:.2f} GiB",
            flush=True)
    if args.run:
      t = time.perf_counter()
      refine.refine_lama_full(g_model, variables, config, image, mask, n_iters=args.iters)
      print(f"refinement {h}x{h} ({args.iters} iters/level): {time.perf_counter() - t:.1f} s, "
            f"VmHWM {_vmhwm_mb():.0f} MiB")


if __name__ == "__main__":
  main()
