r"""onnxruntime vs JAX latency of an exported model: the same composite, alternating runs.

  python -m inpaint_jax.export --checkpoint DIR --format onnx --output m.onnx \
      --height 512 --width 512
  python benchmarks/onnx_latency.py --checkpoint DIR --onnx m.onnx --runs 3

JAX runs the inpaint engine's jitted composite (`engine.composite_fn`), onnxruntime the
exported file (CPU provider, its default threads), on the same random image and box mask
(batch 1, the export's H and W), after one warm-up call each. Prints one JSON line: the
medians and minima in seconds, the max abs difference and the thread settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from inpaint_jax import restore
from inpaint_jax.inference import engine


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--checkpoint", required=True, help="the model directory that was exported")
  p.add_argument("--onnx", required=True, help="the exported .onnx file")
  p.add_argument("--runs", type=int, default=3)
  args = p.parse_args()
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top

  sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
  _, h, w, _ = (int(d) if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape)
  rng = np.random.default_rng(0)
  image = rng.random((1, h, w, 3), dtype=np.float32)
  mask = np.zeros((1, h, w, 1), np.float32)
  mask[:, h // 4:h // 2, w // 4:3 * w // 4] = 1
  config, g_model, variables = restore.load_generator(args.checkpoint)
  fn = engine.composite_fn(config, g_model)
  variables = jax.device_put(variables)

  def run_jax():
    return np.asarray(fn(variables, jnp.asarray(image), jnp.asarray(mask)))

  def run_ort():
    return sess.run(None, {"image": image, "mask": mask})[0]

  t = time.perf_counter()
  ref = run_jax()
  compile_s = time.perf_counter() - t
  diff = float(np.max(np.abs(run_ort() - ref)))
  times = {"jax": [], "onnxruntime": []}
  for _ in range(args.runs):
    for name, f in (("jax", run_jax), ("onnxruntime", run_ort)):
      t = time.perf_counter()
      f()
      times[name].append(time.perf_counter() - t)
  print(json.dumps({
      "size": [h, w], "runs": args.runs, "jax_first_call_s": round(compile_s, 2),
      **{f"{k}_median_s": round(statistics.median(v), 3) for k, v in times.items()},
      **{f"{k}_min_s": round(min(v), 3) for k, v in times.items()},
      "max_abs_diff": diff, "cpus": os.cpu_count(), "ort_version": ort.__version__,
      "loadavg": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
  main()
