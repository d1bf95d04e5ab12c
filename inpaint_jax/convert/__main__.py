r"""`python -m inpaint_jax.convert NAME --checkpoint PATH --output DIR [flags]`.

Converts a published PyTorch checkpoint into a model directory (`inpaint_jax.model_dir`:
orbax variables of each network, `config.json`, `manifest.json` with family, source file and
its sha256), without PyTorch. Examples:

  python -m inpaint_jax.convert lama --checkpoint big-lama --output models/big-lama
  python -m inpaint_jax.convert lama --checkpoint last.ckpt --output models/mine \
      --config=configs/lama.py:fourier --config.data.image_size=512

Flags (`python -m inpaint_jax.convert NAME --help` lists a converter's own):
  --checkpoint PATH       the published file or folder (what the converter accepts).
  --output DIR            the model directory to create (must not exist or be empty).
  --overwrite             replace DIR when it is already a model directory.
  --config=FILE[:ARG]     base config (default: the converter's own, e.g. configs/lama.py);
                          a packaged config by name works too (`--config=lama:big`).
  --config.a.b=VALUE      override one config field (typed like the field's value); an
                          override wins over what the converter sets from the checkpoint
                          (e.g. DCF's `value_range`), so the written config has it.
  --NAME VALUE / --NAME=VALUE   a converter's own flags (e.g. `--channel_order bgr`); dashes
                          and underscores are the same.

The converter contract (what a converter registered for a new family or backbone takes and
returns) is in `inpaint_jax.models.api`: a function
`(checkpoint_path, config_or_None, options) -> Converted(family, config, variables={"g": ...,
"d": ...}, source_file, extra_manifest)` registered with `api.register_converter(name,
options={flag: accepted values}, default_config="configs/<family>.py")` in the family's
`convert.py`; importing `inpaint_jax.models` registers all of them.
"""

from __future__ import annotations

import ast
import os
import sys

import ml_collections

from inpaint_jax import errors
from inpaint_jax.config_lib import find_config_file, load_config_file
from inpaint_jax.models.api import Options
from inpaint_jax.registry import CONVERTERS
from inpaint_jax.weights import model_dir

_COMMON = ("checkpoint", "output", "config", "overwrite")
_FLAG_ONLY = ("overwrite",)


def parse_args(argv: list[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
  """Splits `--name value` / `--name=value` tokens.

  Returns:
    (common flags, `--config.*` overrides as dotted field -> text, other flags), the other
    flags as `name=value` with names normalised to underscores.

  Raises:
    ValueError: a token that is not a `--flag`.
  """
  common: dict[str, str] = {}
  overrides: dict[str, str] = {}
  others: dict[str, str] = {}
  i = 0
  while i < len(argv):
    token = argv[i]
    if not token.startswith("--") or token == "--":
      raise ValueError(f"unexpected argument {token!r}; flags are --name value or --name=value")
    name, eq, value = token[2:].partition("=")
    if not eq:
      bare = name.replace("-", "_") in _FLAG_ONLY
      if bare or i + 1 >= len(argv) or argv[i + 1].startswith("--"):
        value = "true"
      else:
        i += 1
        value = argv[i]
    if name.startswith("config."):
      overrides[name[len("config."):]] = value
    else:
      key = name.replace("-", "_")
      (common if key in _COMMON else others)[key] = value
    i += 1
  return common, overrides, others


def _parse_value(text: str, current, field: str):
  try:
    if isinstance(current, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
      return text.lower() in ("true", "1")
    if isinstance(current, int | float):
      return type(current)(ast.literal_eval(text))
    if isinstance(current, str):
      return text
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text
  except (ValueError, SyntaxError, TypeError) as e:
    raise ValueError(f"--config.{field}={text!r}: expected {type(current).__name__}") from e


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> None:
  """Sets each dotted field; an unknown field or a badly typed value is a ValueError."""
  for field, text in overrides.items():
    node = config
    *parents, leaf = field.split(".")
    for depth, p in enumerate(parents):
      if not isinstance(node, ml_collections.ConfigDict) or p not in node:
        raise ValueError(f"--config.{field}: unknown config field "
                         f"{'.'.join(parents[:depth + 1])}")
      node = node[p]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ValueError(f"--config.{field}: unknown config field {field}")
    node[leaf] = _parse_value(text, node[leaf], field)


_COMMON_HELP = (
    ("--checkpoint PATH", "the published file or folder (required)"),
    ("--output DIR", "the model directory to create, which must not exist or be empty "
                     "(required)"),
    ("--overwrite", "replace DIR when it is already a model directory"),
    ("--config=FILE[:ARG]", "base config: a file or a packaged config name (lama:big)"),
    ("--config.a.b=VALUE", "override one config field (typed like the field's value)"),
)


def _option_usage(key: str, choices: tuple[str, ...] | None) -> str:
  return f"--{key} {'|'.join(choices) if choices else 'VALUE'}"


def _usage() -> str:
  lines = ["usage: python -m inpaint_jax.convert NAME --checkpoint PATH --output DIR "
           "[--config=FILE[:ARG]] [--config.a.b=VALUE ...] [--overwrite] [converter flags]",
           "       python -m inpaint_jax.convert NAME --help   (that converter's flags)", "",
           "Convert published PyTorch weights (read without torch) into a model directory, or "
           "a metric network's / backbone's weights into .npz.", "", "converters:"]
  for name in CONVERTERS.names():
    conv = CONVERTERS.get(name)
    flags = " ".join(_option_usage(k, v) for k, v in conv.options.items())
    lines.append(f"  {name:<16} {conv.help}{'  [' + flags + ']' if flags else ''}")
  return "\n".join(lines)


def converter_usage(name: str) -> str:
  """`python -m inpaint_jax.convert NAME --help` of a model converter: its flags and help."""
  conv = CONVERTERS.get(name)
  own = [(_option_usage(k, v), f"this converter's option; accepted: "
          f"{', '.join(v) if v else 'any value'}") for k, v in conv.options.items()]
  usage = " ".join(["usage: python -m inpaint_jax.convert", name, "--checkpoint PATH",
                    "--output DIR", "[--overwrite]", "[--config=FILE[:ARG]]",
                    "[--config.a.b=VALUE ...]", *(f"[{u}]" for u, _ in own)])
  default = (f"default config: {conv.default_config}" if conv.default_config
             else "default config: chosen by the converter from the checkpoint")
  rows = [*_COMMON_HELP, *own]
  width = max(len(u) for u, _ in rows)
  return "\n".join([usage, "", conv.help, default, "", "flags (dashes and underscores are the "
                    "same):", *(f"  {u:<{width}}  {h}" for u, h in rows), "",
                    "example:", f"  python -m inpaint_jax.convert {name} --checkpoint PATH "
                    f"--output models/{name}"])


def _typed(key: str, argv: list[str]) -> str:
  """The spelling the user gave for the flag normalised to `key` (for error messages)."""
  for token in argv:
    name = token[2:].partition("=")[0] if token.startswith("--") else ""
    if name and name.replace("-", "_") == key:
      return f"--{name}"
  return f"--{key}"


def run(argv: list[str]) -> str:
  """Runs the conversion; returns the model directory written. ValueErrors are user errors."""
  name, rest = argv[0], argv[1:]
  if name.startswith("-"):
    raise ValueError(f"the first argument is the converter name; accepted: "
                     f"{', '.join(CONVERTERS.names())}")
  if name not in CONVERTERS:
    raise ValueError(f"unknown converter {name!r}; accepted: {', '.join(CONVERTERS.names())}")
  conv = CONVERTERS.get(name)
  common, overrides, others = parse_args(rest)
  for flag in ("checkpoint", "output"):
    if not common.get(flag):
      raise ValueError(f"--{flag} is required")
  unknown = sorted(set(others) - set(conv.options))
  if unknown:
    accepted = [f"--{k}" for k in _COMMON] + ["--config.<field>"]
    accepted += [f"--{k}" for k in conv.options]
    raise ValueError(f"{_typed(unknown[0], rest)} is not a flag of converter {name!r}; "
                     f"accepted: {', '.join(accepted)}")
  options = Options(others)
  for key, choices in conv.options.items():
    if choices is not None and key in options:
      options.choice(key, default="", choices=choices)
  checkpoint = common["checkpoint"]
  if not os.path.exists(checkpoint):
    raise FileNotFoundError(f"--checkpoint {checkpoint}: no such file or folder")
  if common.get("config"):
    config = load_config_file(common["config"])
  elif conv.default_config and find_config_file(conv.default_config):
    config = load_config_file(conv.default_config)
  else:
    config = None
  if config is not None:
    apply_overrides(config, overrides)
  out = conv.fn(checkpoint, config, options)
  if overrides:
    # The converter chose its config itself, or changed fields of the given one: the
    # overrides apply to what it returns, so an explicit field is never overruled.
    if out.config is None:
      raise ValueError(f"--config.{next(iter(overrides))}: converter {name!r} has no config")
    apply_overrides(out.config, overrides)
  model_dir.save(common["output"], out.config, out.variables, family=out.family,
                 source_file=out.source_file, extra_manifest=out.extra_manifest,
                 overwrite=common.get("overwrite", "false").lower() in ("1", "true"))
  return common["output"]


def main(argv: list[str] | None = None) -> None:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv[:1] == ["help"] and len(argv) > 1:   # `help NAME` = `NAME --help`
    argv = [argv[1], "--help"]
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(_usage())
    return
  conv = CONVERTERS.get(argv[0]) if argv[0] in CONVERTERS else None
  if conv is not None and conv.command is not None:
    sys.exit(conv.command(argv[1:]))
  if conv is not None and ("--help" in argv[1:] or "-h" in argv[1:]):
    print(converter_usage(argv[0]))
    return
  try:
    with errors.as_user_errors():
      out = run(argv)
  except errors.UserError as e:
    errors.exit_with(str(e))
  print(f"wrote model directory {out}")


if __name__ == "__main__":
  main()
