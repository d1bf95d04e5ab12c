r"""Entry point: `python -m inpaint_jax.main --config=configs/lama.py --workdir=DIR`.

`--config` is a config file (`configs/lama.py:big`, relative to the working directory or
the source tree) or a packaged config by name (`lama:big`); `--config.a.b=VALUE` overrides
one field.

Kept short on purpose: flags, optional `jax.distributed` setup, then one of the
modes in `inpaint_jax`. Modes:
  train    train (and resume) in --workdir (default).
  eval     score the latest checkpoint of --workdir on the `eval` mask sets
           (eval/<set>/results.json, results.md, report.png).
  summary  print the parameter overview and the lines `generator_params: N` and
           `discriminator_params: N`, without training.

Multi-host: pass --coordinator_address/--num_processes/--process_id, or run
under SLURM / on Cloud TPU where `jax.distributed.initialize()` detects them
(see launch/). Every process runs the same command.
"""

from __future__ import annotations

import logging as pylogging
import os

from absl import app, flags, logging
from ml_collections import config_flags

from inpaint_jax import config_lib, errors

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config: a file FILE.py[:ARG] (configs/lama.py:big) or a packaged config "
    "by name NAME[:ARG] (lama:big); --config.a.b=VALUE overrides a field.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (default runs/<config name>); for --mode=eval a training "
    "workdir or a model directory (python -m inpaint_jax.convert).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "summary"], "What to do.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "jax.distributed.initialize(): 'on' always, 'off' never, 'auto' when a coordinator "
    "is given by flag or JAX_COORDINATOR_ADDRESS, or under SLURM / Cloud TPU pods.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def _want_distributed() -> bool:
  if _DISTRIBUTED.value != "auto":
    return _DISTRIBUTED.value == "on"
  env = os.environ
  return bool(_COORDINATOR.value or env.get("JAX_COORDINATOR_ADDRESS")
              or int(env.get("SLURM_NTASKS", "1")) > 1 or env.get("TPU_WORKER_HOSTNAMES"))


def _default_workdir() -> str:
  name = os.path.splitext(os.path.basename(config_flags.get_config_filename(flags.FLAGS["config"])
                                           .split(":")[0]))[0]
  variant = _CONFIG.value.get("variant", "")
  return os.path.join("runs", f"{name}_{variant}" if variant else name)


class _QuietLibraries(pylogging.Filter):
  """Drops INFO lines from orbax (dozens per checkpoint); keeps its warnings."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    return record.levelno >= pylogging.WARNING or "/orbax/" not in record.pathname


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with bad flags and configs reported as one line, exit 2."""
  return config_lib.parse_absl_flags(argv)


def main(argv):
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/lama.py or --config=lama")

  import jax  # pylint: disable=g-import-not-at-top

  if _want_distributed():
    # Must come before any other JAX call.
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)

  from inpaint_jax import summary  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  workdir = _WORKDIR.value or _default_workdir()
  logging.info("config: %s (overrides: %s)",
               config_flags.get_config_filename(flags.FLAGS["config"]),
               config_flags.get_override_values(flags.FLAGS["config"]))
  try:
    if _MODE.value == "summary":
      with errors.as_user_errors():
        summary.summary(config)
    elif _MODE.value == "eval":
      from inpaint_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
      with errors.as_user_errors():
        runner.run(config, workdir)
    else:
      from inpaint_jax import train  # pylint: disable=g-import-not-at-top
      train.train_and_evaluate(config, workdir)
  except errors.UserError as e:
    errors.exit_with(str(e))
  except errors.Interrupted as e:
    # Training caught the Ctrl-C itself and saved the step it finished.
    errors.exit_interrupted(str(e))
  except KeyboardInterrupt:
    errors.exit_interrupted(f"Ctrl-C; --mode={_MODE.value} stopped")
  if jax.process_count() > 1:
    jax.distributed.shutdown()


def run() -> None:
  """The command: absl's app.run, with a Ctrl-C before training starts as one line."""
  flags.mark_flags_as_required(["config"])
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:
    errors.exit_interrupted("Ctrl-C during start-up; nothing was written")


if __name__ == "__main__":
  run()
