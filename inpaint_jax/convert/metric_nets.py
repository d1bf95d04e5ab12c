r"""Converts the metric networks' published PyTorch weights (read without torch) to `.npz`.

  python -m inpaint_jax.convert lpips --vgg16 vgg16-397923af.pth \
      --lin lpips/weights/v0.1/vgg.pth --output weights/lpips_vgg.npz
  python -m inpaint_jax.convert inception \
      --weights pt_inception-2015-12-05-6726825d.pth --output weights/fid_inception.npz

`lpips` takes torchvision's ImageNet VGG-16 file and the `lpips` wheel's linear layers;
`inception` takes pytorch-fid's FID Inception file. The outputs are what
`--lpips-weights` / `--inception-weights` (or `eval.lpips_weights` /
`eval.inception_weights`) expect. `convert_lpips(argv)` and `convert_inception(argv)` take
the arguments after the network name, for the `convert` command's registry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from inpaint_jax.metrics import fid, lpips


class _Parser(argparse.ArgumentParser):
  def error(self, message: str) -> NoReturn:
    self.exit(2, f"error: {message} (see --help)\n")


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
  p = _Parser(prog="lpips", description="LPIPS-VGG v0.1 weights -> .npz")
  p.add_argument("--vgg16", required=True, help="torchvision vgg16 state_dict (.pth)")
  p.add_argument("--lin", required=True, help="the lpips package's weights/v0.1/vgg.pth")
  p.add_argument("--output", required=True, help="converted file (.npz)")
  a = p.parse_args(argv)
  return _run(lpips.convert_from_torch, a.vgg16, a.lin, a.output)


def convert_inception(argv: Sequence[str]) -> int:
  """`inception --weights PATH --output FILE.npz`; returns the exit status."""
  p = _Parser(prog="inception", description="pytorch-fid FID Inception weights -> .npz")
  p.add_argument("--weights", required=True, help="pt_inception-2015-12-05-*.pth")
  p.add_argument("--output", required=True, help="converted file (.npz)")
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
