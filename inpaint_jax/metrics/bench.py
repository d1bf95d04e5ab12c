r"""Evaluation throughput per metric: `python -m inpaint_jax.metrics.bench --size 256`.

Times each metric on random image pairs (after one compiling call) and prints images/s,
one pair = one image. LPIPS and FID run with random weights of the right shapes: the
speed does not depend on the values, and no weight file is needed. FID is timed as its
feature extraction (result + target per pair); the Frechet distance, a 2048x2048 `sqrtm`
in float64 once per set and per hole-area bin, is timed separately.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from inpaint_jax import errors
from inpaint_jax.backbones.inception import FIDInceptionV3
from inpaint_jax.metrics import frechet, pixel
from inpaint_jax.metrics.lpips import LPIPS
from inpaint_jax.metrics.structural import ssim


def _random_variables(module, *args) -> dict:
  """He-scaled random weights of the right shapes, made in numpy (a Flax init of these
  networks takes tens of seconds on a small CPU); BatchNorm variances are 1."""
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args))
  rng = np.random.default_rng(0)

  def leaf(path, s):
    name = str(path[-1])
    if "var" in name:
      return np.ones(s.shape, np.float32)
    if len(s.shape) == 1:
      return np.abs(rng.standard_normal(s.shape)).astype(np.float32) * 0.1
    return (rng.standard_normal(s.shape) * np.sqrt(2 / np.prod(s.shape[:-1]))).astype(np.float32)

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def _rate(fn, x, y, repeats: int) -> float:
  jax.block_until_ready(fn(x, y))   # compile
  t0 = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn(x, y))
  return repeats * x.shape[0] / (time.perf_counter() - t0)


def main(argv=None) -> None:
  p = errors.ArgumentParser(
      "python -m inpaint_jax.metrics.bench",
      "Time each evaluation metric on random image pairs (after one compiling call) and print "
      "images/s; LPIPS and FID run with random weights of the right shapes.",
      epilog="example:\n  python -m inpaint_jax.metrics.bench --size 256 --batch 8")
  p.add_argument("--size", type=int, default=256, metavar="S", help="image side in pixels")
  p.add_argument("--batch", type=int, default=8, metavar="N", help="image pairs per call")
  p.add_argument("--repeats", type=int, default=3, metavar="N", help="timed calls per metric")
  p.add_argument("--skip", default="", metavar="LIST",
                 help="comma-separated metrics not to time: lpips, fid, frechet")
  args = p.parse_args(argv)
  skip = set(args.skip.split(","))
  rng = np.random.default_rng(0)
  shape = (args.batch, args.size, args.size, 3)
  x = jnp.asarray(rng.random(shape, np.float32))
  y = jnp.asarray(np.clip(np.asarray(x) + 0.1 * rng.standard_normal(shape), 0, 1)
                  .astype(np.float32))
  rates = {}
  rates["psnr"] = _rate(jax.jit(pixel.psnr), x, y, args.repeats)
  rates["l1"] = _rate(jax.jit(pixel.l1), x, y, args.repeats)
  rates["ssim"] = _rate(jax.jit(ssim), x, y, args.repeats)
  rates["psnr+ssim+l1"] = _rate(lambda a, b: pixel.image_metrics(a, b), x, y, args.repeats)
  if "lpips" not in skip:
    lp = LPIPS()
    params = _random_variables(lp, x[:1], y[:1])
    rates["lpips"] = _rate(jax.jit(lambda a, b: lp.apply(params, a, b)), x, y, args.repeats)
  if "fid" not in skip:
    net = FIDInceptionV3()
    variables = _random_variables(net, x[:1])
    feats = jax.jit(lambda a: net.apply(variables, a))
    rates["fid (features of result + target)"] = _rate(
        lambda a, b: (feats(a), feats(b)), x, y, args.repeats)
  for name, r in rates.items():
    print(f"{name}: {r:.1f} images/s ({args.size}x{args.size}, batch {args.batch}, "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s))")
  if "frechet" not in skip:
    a = rng.standard_normal((2100, 2048))
    t0 = time.perf_counter()
    frechet.fid_from_features(a, a[::-1] * 1.1)
    print(f"frechet distance (2048-d, float64 sqrtm): {time.perf_counter() - t0:.1f} s per set")


if __name__ == "__main__":
  main()
