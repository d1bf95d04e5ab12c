"""`python -m inpaint_jax` / `inpaint-jax`: the list of commands, and a dispatcher to them.

`inpaint-jax COMMAND ARGS...` runs `python -m inpaint_jax.<module> ARGS...` in this process
(the module runs as `__main__`, so absl commands parse their flags as usual); without a
command, or with `--help`, it prints the overview below.
"""

from __future__ import annotations

import runpy
import sys
from typing import NamedTuple


class Command(NamedTuple):
  module: str      # what `python -m` runs
  summary: str     # one line for the overview
  example: str     # the arguments of a typical call


COMMANDS: dict[str, Command] = {
    "train": Command("inpaint_jax.main",
                     "train (and resume) a model; also --mode=eval|summary",
                     "--config=lama:demo --workdir=runs/demo"),
    "eval_mode": Command("inpaint_jax.eval_mode",
                         "score a training workdir or a model directory on mask sets",
                         "--config=lama:demo --workdir=runs/demo --masks=thick_256"),
    "learning": Command("inpaint_jax.learning",
                        "train and score on held-out photos as it trains (curve + baselines)",
                        "--config=lama:demo --workdir=runs/learn --minutes=30 --every=250"),
    "convert": Command("inpaint_jax.convert",
                       "published PyTorch weights -> model directory (or metric .npz)",
                       "lama --checkpoint big-lama --output models/big-lama"),
    "inpaint": Command("inpaint_jax.inpaint",
                       "inpaint one image, or a folder of NAME.png + NAME_mask*.png",
                       "--checkpoint models/big-lama --input_dir in/ --output_dir out/"),
    "export": Command("inpaint_jax.export",
                      "the generator as serialized StableHLO (jax.export)",
                      "--checkpoint models/big-lama --output g.bin --height 512 --width 512"),
    "masks": Command("inpaint_jax.masks",
                     "write a fixed evaluation mask set (or an inpaint input folder)",
                     "--preset thick_256 --size 256 --images photos/ --output in/"),
    "evaluate": Command("inpaint_jax.evaluate",
                        "score folders of results against targets (PSNR, SSIM, L1, ...)",
                        "--predictions out/ --targets in/ --masks in/ --output scores.json"),
    "bench": Command("inpaint_jax.bench",
                     "time one model pass, train step or input batch (one JSON line)",
                     "--config=lama:big --mode=infer --size=256"),
    "inference_bench": Command("inpaint_jax.inference_bench",
                               "inference latency, folder throughput, refinement memory",
                               "--variant big --what latency --size 512"),
    "metrics_bench": Command("inpaint_jax.metrics.bench",
                             "evaluation throughput per metric",
                             "--size 256 --batch 8"),
    "masks_bench": Command("inpaint_jax.data.masks_bench",
                           "speed and fidelity of the training mask generators",
                           "--n 4000 --size 256"),
}

# Other spellings of a command: the module name (`main`, `metrics.bench`) and dash-case.
ALIASES = {"main": "train", "metrics.bench": "metrics_bench",
           "data.masks_bench": "masks_bench"}
ALIASES.update({name.replace("_", "-"): name for name in COMMANDS if "_" in name})


def overview() -> str:
  """The text `python -m inpaint_jax` prints."""
  width = max(map(len, COMMANDS))
  lines = ["inpaint_jax: deep image inpainting in JAX/Flax.", "",
           "usage: inpaint-jax COMMAND [FLAGS]   (or python -m inpaint_jax COMMAND [FLAGS],",
           "       or python -m <module> [FLAGS]); COMMAND --help lists its flags.", "",
           "commands:"]
  for name, c in COMMANDS.items():
    lines.append(f"  {name:<{width}}  {c.summary}")
    lines.append(f"  {'':<{width}}    python -m {c.module} {c.example}")
  # Imported here: a command run through `main` imports what it needs itself, first
  # (masks_bench sets thread counts before numpy is imported).
  from inpaint_jax import config_lib  # pylint: disable=g-import-not-at-top

  names = ", ".join(config_lib.config_names())
  lines += ["", "Flags are --snake_case (--dash-case is accepted too). --config takes a config "
            "file (configs/lama.py:demo)", f"or a packaged config by name NAME[:ARG] (lama:demo; "
            f"names: {names})."]
  return "\n".join(lines)


def resolve(name: str) -> str | None:
  """The command called `name` (or one of its aliases), or None."""
  name = ALIASES.get(name, name)
  return name if name in COMMANDS else None


def main(argv: list[str] | None = None) -> None:
  """Prints the overview, or runs the command named by the first argument."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    if len(argv) > 1 and argv[0] == "help":   # `help COMMAND` = `COMMAND --help`
      argv = [argv[1], "--help"]
    else:
      print(overview())
      return
  name = resolve(argv[0])
  if name is None:
    print(f"error: unknown command {argv[0]!r}; accepted: {', '.join(COMMANDS)} (see "
          f"python -m inpaint_jax)", file=sys.stderr)
    sys.exit(2)
  # The module runs as if started with `python -m MODULE ARGS...` (runpy sets argv[0]).
  sys.argv = [COMMANDS[name].module, *argv[1:]]
  runpy.run_module(COMMANDS[name].module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
