"""The converter contract: what a registered weight converter takes and returns.

A converter turns one published checkpoint into the variables of our modules, plus the full
run config that rebuilds them. It is registered under a family or backbone name with
`register_converter` in a module of this package (`inpaint_jax/convert/*.py`); the CLI
`python -m inpaint_jax.convert NAME ...` imports every module of the package, looks NAME up in
`registry.CONVERTERS` and writes what the converter returns as a model directory
(`inpaint_jax.model_dir`).

    @register_converter("dfnet", default_config="configs/dfnet.py",
                        options={"channel_order": ("rgb", "bgr")})
    def convert_dfnet(checkpoint: str, config: ConfigDict | None, options: Options) -> Converted:
      order = options.choice("channel_order", default="bgr")
      ...
      return Converted(family="dfnet", config=config, variables={"g": g_vars},
                       source_file=checkpoint)

Arguments a converter receives:
  checkpoint: the `--checkpoint` path as given (a file or a folder: the converter decides
    which files it reads, and names the one it hashed in `Converted.source_file`).
  config: the config from `--config=FILE[:ARG]` (or the converter's `default_config` when the
    flag is absent and the file exists in the source tree) with every `--config.a.b=value`
    override applied. The converter overwrites the fields the tensors determine (widths,
    depths, ...) and keeps the rest. None when there is neither: the converter then builds
    its own config, and the CLI applies the overrides to the one it returns.
  options: the family's own flags (`--channel-order bgr`, `--channel_order=bgr`), names
    normalised to underscores, values as strings; only names declared in `options=` reach it.

Errors: raise ValueError / FileNotFoundError with one message naming the file or flag, what
was wrong and what is accepted; the CLI prints it as one line and exits with status 2.

Converters whose output is not a model directory (metric and loss backbones written as
`.npz`) register a whole command instead: `register_command(name, run)` with
`run(argv_after_the_name) -> exit status`; `python -m inpaint_jax.convert NAME ...` hands it
the remaining arguments unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from inpaint_jax.registry import CONVERTERS

PyTree = Any


@dataclasses.dataclass
class Converted:
  """What a converter returns.

  Attributes:
    family: the model family ("lama", "dfnet", ...) or backbone name, recorded in the manifest;
      inference picks its adapter from `config.generator.name`.
    config: the full config that rebuilds the networks with `system.build` (None for a
      backbone that has no run config).
    variables: net name -> Flax variables ({"params": ..., "batch_stats": ...} of numpy
      arrays); "g" for the generator (or the backbone), "d" for a discriminator when the
      checkpoint has one.
    source_file: the file the weights were read from (its sha256 goes into the manifest).
    extra_manifest: more JSON-serialisable entries for `manifest.json` (inferred settings,
      the original training config, ...).
  """

  family: str
  config: ml_collections.ConfigDict | None
  variables: dict[str, PyTree]
  source_file: str | None = None
  extra_manifest: dict[str, Any] = dataclasses.field(default_factory=dict)


class Options(dict):
  """A converter's own flags: name (underscores) -> string value."""

  def choice(self, name: str, *, default: str, choices: tuple[str, ...] | None = None) -> str:
    value = self.get(name, default)
    if choices is not None and value not in choices:
      raise ValueError(f"--{name.replace('_', '-')}={value!r} is not accepted; accepted: "
                       f"{', '.join(choices)}")
    return value

  def flag(self, name: str, *, default: bool = False) -> bool:
    value = self.get(name)
    if value is None:
      return default
    if value.lower() in ("1", "true", "yes"):
      return True
    if value.lower() in ("0", "false", "no"):
      return False
    raise ValueError(f"--{name.replace('_', '-')}={value!r} is not accepted; accepted: true, "
                     f"false")


ConvertFn = Callable[[str, ml_collections.ConfigDict | None, Options], Converted]


@dataclasses.dataclass(frozen=True)
class Converter:
  """A registered converter.

  Attributes:
    fn: `(checkpoint, config_or_None, options) -> Converted` (None for a command).
    options: accepted family flag name (underscores) -> its accepted values (None: any).
    default_config: config file used when `--config` is absent, relative to the source tree
      (e.g. "configs/lama.py"); None: the converter builds its config itself.
    help: one line for `--help`.
    command: `run(argv) -> exit status` for a converter with its own flags and output.
  """

  fn: ConvertFn | None
  options: Mapping[str, tuple[str, ...] | None]
  default_config: str | None
  help: str
  command: Callable[[list[str]], int] | None = None


def register_converter(name: str, *, options: Mapping[str, tuple[str, ...] | None] | None = None,
                       default_config: str | None = None, help: str = ""
                       ) -> Callable[[ConvertFn], ConvertFn]:
  """Decorator: registers `fn` in `registry.CONVERTERS` under `name`; returns `fn` unchanged."""

  def deco(fn: ConvertFn) -> ConvertFn:
    CONVERTERS.register(name)(Converter(fn=fn, options=dict(options or {}),
                                        default_config=default_config,
                                        help=help or (fn.__doc__ or "").strip().split("\n")[0]))
    return fn

  return deco


def register_command(name: str, run: Callable[[list[str]], int], *, help: str = "") -> None:
  """Registers a converter that parses its own arguments and writes its own output."""
  CONVERTERS.register(name)(Converter(fn=None, options={}, default_config=None,
                                      help=help or (run.__doc__ or "").strip().split("\n")[0],
                                      command=run))
