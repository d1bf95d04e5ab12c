r"""`python -m inpaint_jax.export`: the eval-mode generator as serialized StableHLO or ONNX.

  python -m inpaint_jax.export --checkpoint DIR --output lama_512.bin --height 512 --width 512
  python -m inpaint_jax.export --checkpoint DIR --output g.bin --polymorphic
  python -m inpaint_jax.export --checkpoint DIR --format onnx --output lama_512.onnx \
      --height 512 --width 512

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

`--format onnx` writes the same function as an ONNX model (jax2onnx, opset 23) with the
weights as initializers: inputs `image` (N, H, W, 3) float32 in [0, 1] and `mask`
(N, H, W, 1) float32, 1 = hole (> 0 counts), output `composite` (N, H, W, 3), N symbolic,
H and W fixed (any size: the padding to the size rule and the crop back are in the graph).
Two switches make every family's graph convertible without changing its weights: LaMa's
Fourier units use the real DFT by matrix products (`generator.fft_impl=matmul`, equal to
the FFT to float32 noise), and RFR-Net's weight-shared recurrence is traced as a loop over
the same module (`layers.unrolled_loops`). jax2onnx, onnx and onnx-ir are optional
dependencies (`ONNX_INSTALL`); the command checks them first.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import logging
import os
import re
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaint_jax import errors, restore
from inpaint_jax.errors import UserError
from inpaint_jax.inference import engine
from inpaint_jax.models import api
from inpaint_jax.models.layers import plain_convs, unrolled_loops

FORMATS = ("stablehlo", "onnx")
# jax2onnx 0.13.1-0.17.1 pin orbax-checkpoint<0.11.37 (ours is newer) although 0.17.1 never
# imports orbax, so a plain `pip install jax2onnx` falls back to 0.13.0, which builds wrong
# ConvTranspose graphs. Hence --no-deps for jax2onnx alone, its real dependencies beside it.
JAX2ONNX_MIN = (0, 17, 1)
ONNX_INSTALL = ('pip install onnx onnx-ir onnxruntime && '
                'pip install --no-deps "jax2onnx>=0.17.1,<0.18"')
ONNX_OPSET = 23
# The ONNX protobuf limit: larger models need the weights in a side file.
_PROTO_LIMIT = 2 ** 31 - 1

_DESCRIPTION = """\
Export a model directory's or training workdir's eval-mode generator (with the composite)
as serialized StableHLO (jax.export) with the weights inside: the file runs with JAX alone,
exported.call(image (N, H, W, 3), mask (N, H, W, 1)). With --format onnx, an ONNX model
with inputs `image`, `mask` and output `composite` (onnxruntime and other ONNX runtimes).
Prints one JSON line."""

_EPILOG = f"""\
examples:
  python -m inpaint_jax.export --checkpoint models/big-lama --output lama_512.bin \\
      --height 512 --width 512
  python -m inpaint_jax.export --checkpoint models/dfnet --output g.bin --polymorphic
  python -m inpaint_jax.export --checkpoint models/big-lama --format onnx \\
      --output big-lama-512.onnx --height 512 --width 512

--format onnx needs: {ONNX_INSTALL}"""


def make_parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser("python -m inpaint_jax.export", _DESCRIPTION, epilog=_EPILOG)
  p.add_argument("--checkpoint", required=True, metavar="DIR",
                 help="model directory or training workdir")
  p.add_argument("--output", required=True, metavar="FILE",
                 help="where the serialized export goes")
  p.add_argument("--format", default="stablehlo", choices=FORMATS,
                 help="stablehlo (jax.export, runs with JAX) or onnx (fixed H and W)")
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


def _version_tuple(text: str) -> tuple[int, ...]:
  """'0.17.1' -> (0, 17, 1); a pre-release or local suffix ends the number ('0.18.0rc1')."""
  parts = []
  for piece in text.split(".")[:3]:
    digits = re.match(r"\d+", piece)
    if not digits:
      break
    parts.append(int(digits.group()))
  return tuple(parts)


def check_onnx_tools() -> None:
  """Raises UserError (one line with the install line) unless jax2onnx >= 0.17.1 imports."""
  want = ".".join(map(str, JAX2ONNX_MIN))
  try:
    version = importlib.metadata.version("jax2onnx")
  except importlib.metadata.PackageNotFoundError:
    raise UserError(f"--format onnx needs jax2onnx>={want}, which is not installed; "
                    f"install: {ONNX_INSTALL}") from None
  if _version_tuple(version) < JAX2ONNX_MIN:
    raise UserError(f"--format onnx needs jax2onnx>={want}, found {version} (0.13.0 writes "
                    f"wrong ConvTranspose graphs); install: {ONNX_INSTALL}")
  try:
    import jax2onnx  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import onnx  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise UserError(f"--format onnx: jax2onnx {version} does not import ({e}); install: "
                    f"{ONNX_INSTALL}") from e


def onnx_generator(g_model: nn.Module) -> nn.Module:
  """The generator as the ONNX graph traces it: LaMa's Fourier units with `fft_impl=matmul`
  (the same variables); other generators unchanged."""
  if "fft_impl" in {f.name for f in dataclasses.fields(g_model)}:
    return g_model.clone(fft_impl="matmul")
  return g_model


def export_onnx(path: str, out: str, *, height: int, width: int) -> dict:
  """Exports the composite function as ONNX and writes `out`; returns a small description.

  Args:
    path: model directory or training workdir.
    out: the .onnx file to write.
    height, width: the fixed input size H, W (the batch N stays symbolic).

  Returns:
    {"output", "format", "inputs": {name: shape}, "outputs": {...}, "opset", "bytes",
    "seconds"}.
  """
  check_onnx_tools()
  import jax2onnx  # pylint: disable=g-import-not-at-top
  import onnx  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  config, g_model, variables = restore.load_generator(path)
  adapter = api.get_adapter(config)
  g_model = onnx_generator(g_model)
  variables = jax.tree.map(jnp.asarray, variables)

  def fn(image, mask):
    return engine.composite(adapter, g_model, variables, image, mask)

  # jax2onnx logs a traceback for each optional plugin it cannot import (equinox, ...).
  quiet = [logging.getLogger(name) for name in ("jax2onnx", "onnx_ir")]
  levels = [lg.level for lg in quiet]
  for lg in quiet:
    lg.setLevel(logging.ERROR)
  try:
    with unrolled_loops(), plain_convs():
      model = jax2onnx.to_onnx(fn, [("N", height, width, 3), ("N", height, width, 1)],
                               model_name=f"inpaint_jax_{config.generator.name}",
                               opset=ONNX_OPSET, input_names=["image", "mask"],
                               output_names=["composite"])
  finally:
    for lg, level in zip(quiet, levels, strict=True):
      lg.setLevel(level)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  if model.ByteSize() > _PROTO_LIMIT:
    onnx.save_model(model, out, save_as_external_data=True,
                    location=os.path.basename(out) + ".data")
  else:
    onnx.save_model(model, out)

  def shape(v):
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

  return {"output": out, "format": "onnx",
          "inputs": {v.name: shape(v) for v in model.graph.input},
          "outputs": {v.name: shape(v) for v in model.graph.output},
          "opset": ONNX_OPSET, "bytes": os.path.getsize(out),
          "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
  args = make_parser().parse_args(argv)
  try:
    if args.format == "onnx":
      if args.polymorphic:
        raise UserError("--polymorphic: --format onnx takes a fixed size; accepted: --height H "
                        "--width W (the batch stays symbolic)")
      if args.platforms:
        raise UserError("--platforms applies to --format stablehlo only; an ONNX file runs "
                        "wherever an ONNX runtime does")
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
      if args.format == "onnx":
        info = export_onnx(args.checkpoint, args.output, height=args.height, width=args.width)
      else:
        info = export(args.checkpoint, args.output, height=args.height, width=args.width,
                      polymorphic=args.polymorphic, platforms=platforms)
  except UserError as e:
    errors.exit_with(str(e))
  except KeyboardInterrupt:
    errors.exit_interrupted(f"Ctrl-C; {args.output} was not written")
  print(json.dumps(info))


if __name__ == "__main__":
  main()
