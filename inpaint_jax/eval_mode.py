r"""`python -m inpaint_jax.eval_mode --config=FILE[:ARG] --workdir=DIR`: score a run on mask sets.

The same as `python -m inpaint_jax.main --config=... --mode=eval --workdir=DIR`; the flags
below override the config's `eval.*` fields. DIR is a training workdir (its latest
checkpoint) or a model directory; the library is `inpaint_jax.evaluation.runner`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

from inpaint_jax import config_lib, errors
from inpaint_jax.evaluation import runner


def main(argv: Sequence[str]) -> None:
  del argv
  config = flags.FLAGS.config
  with config.unlocked():
    ev = config_lib.eval_settings(config)
    for field in ("masks", "n_images", "lpips_weights", "inception_weights", "metrics"):
      value = getattr(flags.FLAGS, field)
      if value not in (None, ""):
        ev[field] = value
    config.eval = ev
  logging.info("config: %s", config_flags.get_config_filename(flags.FLAGS["config"]))
  try:
    with errors.as_user_errors():
      runner.run(config, flags.FLAGS.workdir)
  except errors.UserError as e:
    errors.exit_with(str(e))


def _define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/lama.py:demo.",
                                  lock_config=False)
  flags.DEFINE_string("workdir", None, "Run directory with checkpoints/.")
  flags.DEFINE_string("masks", None, "eval.masks: preset(s) or mask folder(s).")
  flags.DEFINE_integer("n_images", None, "eval.n_images.")
  flags.DEFINE_string("lpips_weights", None, "eval.lpips_weights.")
  flags.DEFINE_string("inception_weights", None, "eval.inception_weights.")
  flags.DEFINE_string("metrics", None, "eval.metrics.")
  flags.mark_flags_as_required(["config", "workdir"])


if __name__ == "__main__":
  _define_flags()
  app.run(main)
  sys.exit(0)
