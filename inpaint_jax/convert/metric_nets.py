r"""Converts the metric networks' published PyTorch weights (read without torch) to `.npz`.

  python -m inpaint_jax.convert lpips --vgg16 vgg16-397923af.pth \
      --lin lpips/weights/v0.1/vgg.pth --output weights/lpips_vgg.npz
  python -m inpaint_jax.convert inception \
      --weights pt_inception-2015-12-05-6726825d.pth --output weights/fid_inception.npz

`lpips` takes torchvision's ImageNet VGG-16 file and the `lpips` wheel's linear layers;
`inception` takes pytorch-fid's FID Inception file. The outputs are what
`--lpips_weights` / `--inception_weights` (or `eval.lpips_weights` /
`eval.inception_weights`) expect. `convert_lpips(argv)` and `convert_inception(argv)` take
the arguments after the network name, for the `convert` command's registry.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from inpaint_jax import errors
from inpaint_jax.metrics import fid, lpips


def _run(fn, *args) -> int:
  try:
    out = fn(*args)
  except (ValueError, OSError) as e:   # missing file, not a torch file, wrong keys or shapes
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0


def convert_lpips(argv: Sequence[str]) -> int:
  """`lpips --vgg16 PATH --lin PATH --output FILE.npz`; returns the exit status."""
  p = errors.ArgumentParser(
      "python -m inpaint_jax.convert lpips",
      "Convert LPIPS-VGG v0.1 weights (torchvision's VGG-16 and the lpips package's linear "
      "layers) to the .npz that evaluate --lpips_weights / eval.lpips_weights read.",
      epilog="example:\n  python -m inpaint_jax.convert lpips --vgg16 vgg16-397923af.pth "
             "--lin lpips/weights/v0.1/vgg.pth --output weights/lpips_vgg.npz")
  p.add_argument("--vgg16", required=True, metavar="FILE",
                 help="torchvision vgg16 state_dict (.pth)")
  p.add_argument("--lin", required=True, metavar="FILE",
                 help="the lpips package's weights/v0.1/vgg.pth")
  p.add_argument("--output", required=True, metavar="FILE.npz", help="converted file (.npz)")
  a = p.parse_args(argv)
  return _run(lpips.convert_from_torch, a.vgg16, a.lin, a.output)


def convert_inception(argv: Sequence[str]) -> int:
  """`inception --weights PATH --output FILE.npz`; returns the exit status."""
  p = errors.ArgumentParser(
      "python -m inpaint_jax.convert inception",
      "Convert pytorch-fid's FID Inception weights to the .npz that evaluate "
      "--inception_weights / eval.inception_weights read.",
      epilog="example:\n  python -m inpaint_jax.convert inception --weights "
             "pt_inception-2015-12-05-6726825d.pth --output weights/fid_inception.npz")
  p.add_argument("--weights", required=True, metavar="FILE",
                 help="pytorch-fid's pt_inception-2015-12-05-*.pth")
  p.add_argument("--output", required=True, metavar="FILE.npz", help="converted file (.npz)")
  a = p.parse_args(argv)
  return _run(fid.convert_from_torch, a.weights, a.output)


CONVERTERS = {"lpips": convert_lpips, "inception": convert_inception}


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] not in CONVERTERS:
    got = repr(argv[0]) if argv else "nothing"
    print(f"error: first argument: unknown network {got}; accepted: {', '.join(CONVERTERS)}",
          file=sys.stderr)
    return 2
  return CONVERTERS[argv[0]](argv[1:])


if __name__ == "__main__":
  sys.exit(main())
