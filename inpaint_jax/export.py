r"""`python -m inpaint_jax.export`: the eval-mode generator as serialized StableHLO.

  python -m inpaint_jax.export --checkpoint DIR --output lama_512.bin --height 512 --width 512
  python -m inpaint_jax.export --checkpoint DIR --output g.bin --polymorphic

The file is `jax.export.Exported.serialize()` with the weights inside as constants: it needs
only JAX to run, no project code and no weight file:

  exported = jax.export.deserialize(open("lama_512.bin", "rb").read())
  composite = exported.call(image, mask)   # (N, H, W, 3) float32, (N, H, W, 1) 1 = hole

The exported function is the inpaint command's path: the mask is binarised (> 0), image and
mask are padded bottom/right to the family's size multiple (numpy `symmetric`, inside the
program), one eval-mode pass, composite `mask * pred + (1 - mask) * image`, crop back. The
batch size N is always symbolic. `--height/--width` fix the spatial size; `--polymorphic`
also leaves H and W symbolic (multiples of the size rule), which needs a generator whose
every op accepts symbolic sizes: jax.export's FFT takes static lengths only, so
Fourier-convolution models (LaMa) are exported per size.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp

from inpaint_jax import errors, restore
from inpaint_jax.errors import UserError
from inpaint_jax.inference import engine
from inpaint_jax.models import api

_DESCRIPTION = """\
Export a model directory's or training workdir's eval-mode generator (with the composite)
as serialized StableHLO (jax.export) with the weights inside: the file runs with JAX alone,
exported.call(image (N, H, W, 3), mask (N, H, W, 1)). Prints one JSON line."""

_EPILOG = """\
examples:
  python -m inpaint_jax.export --checkpoint models/big-lama --output lama_512.bin \\
      --height 512 --width 512
  python -m inpaint_jax.export --checkpoint models/dfnet --output g.bin --polymorphic"""


def make_parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser("python -m inpaint_jax.export", _DESCRIPTION, epilog=_EPILOG)
  p.add_argument("--checkpoint", required=True, metavar="DIR",
                 help="model directory or training workdir")
  p.add_argument("--output", required=True, metavar="FILE",
                 help="where the serialized export goes")
  p.add_argument("--height", type=int, metavar="H", help="input height (with --width)")
  p.add_argument("--width", type=int, metavar="W", help="input width (with --height)")
  p.add_argument("--polymorphic", action="store_true",
                 help="symbolic height and width too (the batch is always symbolic)")
  p.add_argument("--platforms", default=None, metavar="LIST",
                 help="comma-separated lowering platforms, e.g. cpu,cuda (default: this one)")
  return p


def export(path: str, out: str, *, height: int | None = None, width: int | None = None,
           polymorphic: bool = False, platforms: tuple[str, ...] | None = None) -> dict:
  """Exports and writes `out`; returns a small description (shapes, platforms, bytes)."""
  config, g_model, variables = restore.load_generator(path)
  adapter = api.get_adapter(config)
  m = adapter.size_multiple
  if polymorphic:
    spec = f"b, {m}*h, {m}*w"
  else:
    spec = f"b, {height}, {width}"
  dims = jax.export.symbolic_shape(spec)
  args = (jax.ShapeDtypeStruct((*dims, 3), jnp.float32),
          jax.ShapeDtypeStruct((*dims, 1), jnp.float32))
  # The weights are closed over: they become constants of the exported program.
  variables = jax.tree.map(jnp.asarray, variables)
  fn = jax.jit(lambda image, mask: engine.composite(adapter, g_model, variables, image, mask))
  try:
    exported = jax.export.export(fn, platforms=platforms)(*args)
  except Exception as e:  # pylint: disable=broad-except
    if not polymorphic:
      raise
    # Static FFT lengths ('_DimExpr' cannot be an integer), or a size check the model makes
    # on its feature maps ('h' <= '1' is inconclusive).
    reason = errors.clean_message(str(e).split("\n")[0])[:160]
    raise UserError(
        f"--polymorphic: generator {config.generator.name!r} cannot take symbolic H and W "
        f"({type(e).__name__}: {reason}; jax.export needs static FFT lengths); accepted: "
        f"--height H --width W (the batch stays symbolic)") from e
  data = exported.serialize()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "wb") as f:
    f.write(bytes(data))
  return {"output": out, "input_shapes": [str(a.shape) for a in exported.in_avals],
          "platforms": list(exported.platforms), "bytes": len(data)}


def main(argv: list[str] | None = None) -> None:
  args = make_parser().parse_args(argv)
  try:
    if args.polymorphic and (args.height or args.width):
      raise UserError("use either --height/--width or --polymorphic, not both")
    if not args.polymorphic:
      if not (args.height and args.width):
        raise UserError("--height and --width are required (or --polymorphic)")
      if args.height < 1 or args.width < 1:
        raise UserError(f"--height {args.height} --width {args.width}: must be positive")
    platforms = tuple(p for p in args.platforms.split(",") if p) if args.platforms else None
    errors.check_output_location(args.output, "--output")
    with errors.as_user_errors():
      info = export(args.checkpoint, args.output, height=args.height, width=args.width,
                    polymorphic=args.polymorphic, platforms=platforms)
  except UserError as e:
    errors.exit_with(str(e))
  except KeyboardInterrupt:
    errors.exit_interrupted(f"Ctrl-C; {args.output} was not written")
  print(json.dumps(info))


if __name__ == "__main__":
  main()
