r"""`python -m inpaint_jax.eval_mode --config=FILE[:ARG] --workdir=DIR`: score a run on mask sets.

The same as `python -m inpaint_jax.main --config=... --mode=eval --workdir=DIR`; the flags
below override the config's `eval.*` fields. DIR is a training workdir (its latest
checkpoint) or a model directory (`python -m inpaint_jax.convert`); the results go to
DIR/eval/<set>/. With `--checkpoint=MODEL` the model is read from MODEL (a model directory
or a training workdir) and the results go to --workdir (default: MODEL). `--config` is a
config file or a packaged config by name (`lama:demo`). The library is
`inpaint_jax.evaluation.runner`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

from inpaint_jax import config_lib, errors
from inpaint_jax.evaluation import runner

# Flag -> the `eval.*` field it overrides (the same names as the evaluate command's flags).
EVAL_FLAGS = ("masks", "n_images", "lpips_weights", "inception_weights", "metrics",
              "ssim_mode", "batch_size")


def main(argv: Sequence[str]) -> None:
  del argv
  workdir = flags.FLAGS.workdir or flags.FLAGS.checkpoint
  config = flags.FLAGS.config
  with config.unlocked():
    ev = config_lib.eval_settings(config)
    for field in EVAL_FLAGS:
      value = getattr(flags.FLAGS, field)
      if value not in (None, ""):
        ev[field] = value
    config.eval = ev
  logging.info("config: %s", config_flags.get_config_filename(flags.FLAGS["config"]))
  try:
    with errors.as_user_errors():
      runner.run(config, workdir, checkpoint=flags.FLAGS.checkpoint)
  except errors.UserError as e:
    errors.exit_with(str(e))
  except KeyboardInterrupt:
    errors.exit_interrupted("Ctrl-C; the mask sets scored before it were written")


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", None, "Config: a file FILE.py[:ARG] (configs/lama.py:demo) or a packaged "
      "config by name NAME[:ARG] (lama:demo); --config.a.b=VALUE overrides a field.",
      lock_config=False)
  flags.DEFINE_string("workdir", None, "Training workdir or model directory to score; the "
                      "results go to <workdir>/eval/<set>/ (default: --checkpoint).")
  flags.DEFINE_string("checkpoint", None, "Model directory or training workdir to score, "
                      "when the results go elsewhere (--workdir).")
  flags.DEFINE_string("masks", None, "eval.masks: preset(s) or mask folder(s), "
                      "comma-separated.")
  flags.DEFINE_integer("n_images", None, "eval.n_images: images to score (0: the whole split).")
  flags.DEFINE_string("lpips_weights", None, "eval.lpips_weights: converted LPIPS weights "
                      "(python -m inpaint_jax.convert lpips).")
  flags.DEFINE_string("inception_weights", None, "eval.inception_weights: converted FID "
                      "Inception weights (python -m inpaint_jax.convert inception).")
  flags.DEFINE_string("metrics", None, "eval.metrics: comma-separated, from "
                      "psnr,ssim,l1,lpips,fid.")
  flags.DEFINE_enum("ssim_mode", None, ["skimage", "lama"], "eval.ssim_mode.")
  flags.DEFINE_integer("batch_size", None, "eval.batch_size: images per generator call.")
  flags.mark_flags_as_required(["config"])
  flags.register_multi_flags_validator(
      ["workdir", "checkpoint"], lambda v: bool(v["workdir"] or v["checkpoint"]),
      message="--workdir is required (a training workdir or a model directory), or "
              "--checkpoint=MODEL")


if __name__ == "__main__":
  _define_flags()
  try:
    app.run(main, flags_parser=config_lib.parse_absl_flags)
  except KeyboardInterrupt:
    errors.exit_interrupted("Ctrl-C during start-up; nothing was written")
  sys.exit(0)
