r"""`python -m inpaint_jax.learning --config=FILE[:ARG] --workdir=DIR --every=K`: does it learn?

Trains the config (steps `--steps`, or `--minutes` of training) on the training photos and,
every `--every` steps, scores the generator on held-out photos with fixed mask sets at the
run's image size; then writes DIR/learning.json (the curve, the final point, OpenCV Telea /
Navier-Stokes / mean-fill scores of the same images and masks, and which of them the run
beats) and DIR/learning.png (the curves with the baselines as lines). The run is a training
run: run the same command again to resume it (with a larger --steps / --minutes to go on);
`--report_only` rewrites the two files from DIR as it is. The library is
`inpaint_jax.evaluation.learning`.

Example (the quick start's demo for 30 minutes, scored every 250 steps):

  python -m inpaint_jax.learning --config=configs/lama.py:demo --workdir=runs/learn_lama \
      --steps=1000000 --minutes=30 --every=250
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

from inpaint_jax import config_lib, errors

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config: a file FILE.py[:ARG] or a packaged config NAME[:ARG]; "
    "--config.a.b=VALUE overrides a field.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (resumed when it has one).")
_EVERY = flags.DEFINE_integer("every", 250, "Score the generator every this many steps.")
_STEPS = flags.DEFINE_integer("steps", 0, "total_steps of the run (0: the config's own).")
_MINUTES = flags.DEFINE_float("minutes", 0.0, "Stop after this many minutes of training, "
                              "over all resumes (0: no limit).")
_MASKS = flags.DEFINE_string("masks", "irregular_20_30,thick_256",
                             "Mask presets, comma-separated, made at the run's image size; "
                             "the first is the one plotted.")
_N_EXAMPLES = flags.DEFINE_integer("n_examples", 24, "(image, mask) pairs per mask set; the "
                                   "held-out photos are cycled with new masks.")
_TRAIN_FOLDER = flags.DEFINE_string("train_folder", "", "Train on these photos instead of the "
                                    "embedded training split (needs --held_out_folder).")
_HELD_OUT_FOLDER = flags.DEFINE_string("held_out_folder", "", "Score on these photos instead "
                                       "of the embedded held-out split.")
_LPIPS = flags.DEFINE_string("lpips_weights", "", "Converted LPIPS weights, to add LPIPS.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only rewrite learning.json / .png.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from inpaint_jax import train  # pylint: disable=g-import-not-at-top
  from inpaint_jax.evaluation import learning  # pylint: disable=g-import-not-at-top

  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    with errors.as_user_errors(), config.unlocked():
      learning.configure(config, every=_EVERY.value, steps=_STEPS.value,
                         minutes=_MINUTES.value, masks=_MASKS.value,
                         n_examples=_N_EXAMPLES.value, train_folder=_TRAIN_FOLDER.value,
                         held_out_folder=_HELD_OUT_FOLDER.value, lpips_weights=_LPIPS.value)
    if not _REPORT_ONLY.value:
      train.train_and_evaluate(config, workdir)
    with errors.as_user_errors():
      out = learning.write(config, workdir,
                           config_name=config_flags.get_config_filename(flags.FLAGS["config"]),
                           command=" ".join(shlex.quote(a) for a in sys.argv))
  except errors.UserError as e:
    errors.exit_with(str(e))
  except errors.Interrupted as e:
    errors.exit_interrupted(f"{e}; run the command again to resume, or add --report_only "
                            "to write learning.json from the points so far")
  except KeyboardInterrupt:
    errors.exit_interrupted("Ctrl-C; run the command again to resume")
  final = out["final"]
  set_name = out["mask_sets"][0]
  logging.info("final point: %s", final)
  summary = ", ".join(f"{m} {final.get(f'{set_name}/{m}', float('nan')):.4g}"
                      for m in learning.CURVE_METRICS)
  wins = [n for n, b in out["beats"].items()
          if b and all(v for k, v in b.items() if k.startswith(set_name + "/"))]
  print(f"{set_name} at step {final.get('step')}: {summary}; beats on every metric: "
        f"{', '.join(wins) or 'none'}")
  print(f"wrote {workdir}/{learning.LEARNING_JSON} and {workdir}/{learning.LEARNING_PNG}")


def run() -> None:
  flags.mark_flags_as_required(["config", "workdir"])
  try:
    app.run(main, flags_parser=config_lib.parse_absl_flags)
  except KeyboardInterrupt:
    errors.exit_interrupted("Ctrl-C during start-up; nothing was written")


if __name__ == "__main__":
  run()
