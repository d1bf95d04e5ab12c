"""Helpers shared by the files in `configs/`.

Config files import from the installed package (never from a sibling file) so
that `--config=configs/lama.py:big` works from any working directory. The configs are also
shipped as the package `inpaint_jax.configs`, reachable by name: `--config=lama:big`
(`load_config_file`, and `absl_argv` / `parse_absl_flags` for the absl commands).
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections


def parse_arg(arg: str | None, **spec: Any) -> ml_collections.ConfigDict:
  """Parses the text after ':' in `--config=file.py:ARG` (big_vision style).

  `ARG` is a comma-separated list of `key=value` or bare `key` (meaning True).
  A lone value without `=` sets the first key of `spec`. Values are converted
  to the type of the default in `spec`.

  Args:
    arg: the argument string, or None.
    **spec: accepted keys and their defaults.

  Returns:
    A ConfigDict with one field per key of `spec`.

  Raises:
    ValueError: for a key not in `spec` or a value of the wrong type.
  """
  out = ml_collections.ConfigDict(dict(spec))
  if not arg:
    return out
  first = next(iter(spec)) if spec else None
  for i, item in enumerate(x for x in arg.split(",") if x):
    if "=" in item:
      key, value = item.split("=", 1)
    elif i == 0 and first is not None and not isinstance(spec[first], bool):
      key, value = first, item
    else:
      key, value = item, "True"
    if key not in spec:
      raise ValueError(
          f"config argument {key!r} is not accepted; accepted: {', '.join(spec)}")
    default = spec[key]
    try:
      if isinstance(default, bool):
        if value not in ("True", "False", "true", "false", "1", "0"):
          raise ValueError(value)
        parsed = value in ("True", "true", "1")
      elif isinstance(default, int | float):
        parsed = type(default)(ast.literal_eval(value))
      else:
        parsed = value
    except (ValueError, SyntaxError) as e:
      raise ValueError(
          f"config argument {key}={value!r}: expected {type(default).__name__}") from e
    out[key] = parsed
  return out


def term(fn: str, weight: float, **options: Any) -> ml_collections.ConfigDict:
  """One entry of a loss recipe: the registered function, its weight, options."""
  return ml_collections.ConfigDict(dict(fn=fn, weight=float(weight), **options))


# Run lengths of the small variants every family offers: `demo` trains for a few CPU
# minutes at 64 px (the quick start), `tiny` runs 4 steps at 32 px (the tests).
RUN_LENGTHS = {
    # The demos' photos are first resized to a shorter side of twice the crop, the scale
    # of LaMa's recipe (256 px crops of ~512 px Places photos); cropped at full size,
    # 64 px crops of the 500-1400 px embedded photos would be close-ups of texture.
    "demo": dict(batch_size=4, total_steps=500, checkpoint_every_steps=250,
                 log_every_steps=25, image_every_steps=100, image_size=64, shorter_side=128),
    "tiny": dict(batch_size=4, total_steps=4, checkpoint_every_steps=2,
                 log_every_steps=1, image_every_steps=2, image_size=32),
}


def set_run_length(c: ml_collections.ConfigDict, preset: str, **overrides: Any) -> None:
  """Sets batch size, step counts, periods and image size from `RUN_LENGTHS[preset]`.

  Args:
    c: the config to change in place (fields `batch_size`, `total_steps`,
      `checkpoint_every_steps`, `log_every_steps`, `image_every_steps`,
      `data.image_size`, `data.shorter_side`).
    preset: `demo` or `tiny`.
    **overrides: values replacing the preset's (e.g. `total_steps=300`).
  """
  values = {**RUN_LENGTHS[preset], **overrides}
  c.data.image_size = values.pop("image_size")
  c.data.shorter_side = values.pop("shorter_side", 0)
  for key, value in values.items():
    setattr(c, key, value)


def vgg_weights(variant: str, path: str) -> tuple[bool, str]:
  """Whether a family's VGG loss terms are on, and the weights path of its VGG backbone.

  The published variants always have the terms (training needs the ImageNet weights
  file). Without a path, `demo` runs them on seeded random weights (`"random"`, see
  `models.vgg.RANDOM_WEIGHTS`) so every term of the recipe is computed and logged out of
  the box, and `tiny` (the tests) leaves them out. `none` leaves them out of `demo` too.

  Args:
    variant: the config variant.
    path: the `vgg16=` / `vgg19=` argument ("" when not given).

  Returns:
    (terms on, backbone path).
  """
  if path == "none":
    if variant not in ("demo", "tiny"):
      raise ValueError(f"vgg weights 'none' leave the published recipe; accepted only with "
                       f"the demo and tiny variants, not {variant!r}")
    return False, ""
  if variant == "tiny":
    return bool(path), path
  if variant == "demo":
    return True, path or "random"
  return True, path


def recipe_items(recipe: Mapping[str, Any]) -> list[tuple[str, str, float, dict[str, Any]]]:
  """Returns the recipe as (label, fn name, weight, options) in a stable order."""
  items = []
  for label in sorted(recipe):
    entry = dict(recipe[label])
    fn = entry.pop("fn")
    weight = entry.pop("weight")
    items.append((label, fn, float(weight), entry))
  return items


def data_config(**overrides: Any) -> ml_collections.ConfigDict:
  """The `data` config group (fields: `inpaint_jax.data.sources`, `.pipeline`, `.augment`).

  Args:
    **overrides: fields replacing the defaults (e.g. `image_size=512, augment="flip"`).
  """
  c = ml_collections.ConfigDict(dict(
      source="embedded",        # embedded | folder | tfds
      # The embedded photos a run trains on: the held-out three are for evaluation.
      embedded_split="train",
      image_size=256,           # random square crops
      augment="flip",           # none | flip | distortions | resize_flip_jitter
      folder="",                # for source=folder: any tree of JPEG/PNG
      small_images="error",     # error | skip | resize, for images smaller than the crop
      shorter_side=0,           # >0: resize every image to this shorter side first
      tfds_name="",             # for source=tfds, e.g. places365_small
      tfds_split="train",
      tfds_data_dir="",
      tfds_image_key="image",
      prefetch=2,               # batches prepared ahead by background threads
  ))
  unknown = sorted(set(overrides) - set(c.keys()))
  if unknown:
    raise KeyError(f"data_config: unknown field(s) {', '.join(unknown)}")
  c.update(overrides)
  return c


def eval_config() -> ml_collections.ConfigDict:
  """The `eval` config group with its defaults (fields: `inpaint_jax.evaluation.runner`)."""
  return ml_collections.ConfigDict(dict(
      masks="thick_256", n_images=0, image_size=0, seed=0, source="", folder="",
      tfds_split="", embedded_split="held_out", metrics="psnr,ssim,l1,lpips,fid",
      ssim_mode="skimage", lpips_weights="", inception_weights="", batch_size=8,
      periodic_n_images=16, periodic_masks="", data_name="", protocol=None))


def eval_protocol(c: ml_collections.ConfigDict, *, title: str, data: str, metrics: str,
                  rows: Sequence[tuple[str, str]], published: Sequence[dict] = (),
                  note: str = "") -> None:
  """Makes a paper's evaluation protocol the config's full evaluation (`--mode=eval`).

  Sets `eval.protocol` (fields: `inpaint_jax.evaluation.protocol`), `eval.masks` to the
  rows' mask sets and `eval.metrics` to the paper's columns; the periodic validation
  keeps the sets it had (`eval.periodic_masks`, unless already set).

  Args:
    c: the config, with an `eval` group.
    title: the table's caption.
    data: the name of the data the published figures were measured on.
    metrics: the paper's columns, comma-separated, in its order.
    rows: ((row label, mask set), ...).
    published: ({"model", "row" (a row label or ""), "values": {metric: value},
      "note"}, ...).
    note: where the figures come from, what is not known.
  """
  if "eval" not in c:
    c.eval = eval_config()
  if not c.eval.periodic_masks:
    c.eval.periodic_masks = c.eval.masks
  c.eval.protocol = dict(title=title, data=data, metrics=metrics, rows=tuple(rows),
                         published=tuple(published), note=note)
  c.eval.masks = ",".join(dict.fromkeys(mask_set for _, mask_set in rows))
  c.eval.metrics = metrics


def eval_settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run's `eval` group over the defaults (a config without one gets the defaults)."""
  out = eval_config()
  given = config.get("eval")
  if given is not None:
    unknown = sorted(set(given.keys()) - set(out.keys()))
    if unknown:
      raise ValueError(f"config field(s) {', '.join('eval.' + k for k in unknown)}: unknown; "
                       f"accepted: {', '.join(sorted(out.keys()))}")
    out.update(given.to_dict() if hasattr(given, "to_dict") else dict(given))
  return out


# The repository root (configs/ sits beside the package in a clone).
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE = "inpaint_jax.configs"   # configs/ as installed (pyproject maps it there)


def packaged_config_dir() -> str | None:
  """The folder of the configs shipped with the package (`configs/` of a clone)."""
  try:
    spec = importlib.util.find_spec(_PACKAGE)
  except ImportError:
    spec = None
  locations = list(spec.submodule_search_locations or []) if spec is not None else []
  for folder in [*locations, os.path.join(SOURCE_ROOT, "configs")]:
    if os.path.isdir(folder):
      return folder
  return None


def config_names() -> list[str]:
  """Names of the packaged configs (`lama`, `dfnet`, ...), for `--config=NAME[:ARG]`."""
  folder = packaged_config_dir()
  if folder is None:
    return []
  return sorted(f[:-3] for f in os.listdir(folder)
                if f.endswith(".py") and not f.startswith("_"))


def find_config_file(path: str) -> str | None:
  """The config file `path` names, or None.

  In order: `path` itself (absolute, or relative to the working directory), `path` relative
  to the source tree (so `configs/lama.py` works from any directory of a clone), and a
  packaged config: `lama`, `lama.py` or `configs/lama.py` name `inpaint_jax.configs`'s
  `lama.py` (so the names work from an installed wheel too).
  """
  if not path:
    return None
  candidates = [path] if os.path.isabs(path) else [path, os.path.join(SOURCE_ROOT, path)]
  head, base = os.path.split(os.path.normpath(path))
  folder = packaged_config_dir()
  # `SOURCE_ROOT/configs/x.py` is how library code names a config; in a wheel it is packaged.
  if folder is not None and head in ("", "configs", os.path.join(SOURCE_ROOT, "configs")):
    name = base[:-3] if base.endswith(".py") else base
    candidates.append(os.path.join(folder, f"{name}.py"))
  return next((os.path.abspath(p) for p in candidates if os.path.isfile(p)), None)


def resolve_config_spec(spec: str) -> str:
  """`FILE[:ARG]` or `NAME[:ARG]` -> `/abs/FILE[:ARG]`; FileNotFoundError names what is accepted."""
  path, sep, arg = spec.partition(":")
  found = find_config_file(path)
  if found is None:
    names = config_names()
    accepted = f"; or a packaged config name: {', '.join(names)}" if names else ""
    raise FileNotFoundError(
        f"--config={spec}: no such config file {path!r} (relative to the working directory "
        f"or the source tree); accepted: a config file FILE.py[:ARG]{accepted} (e.g. "
        f"--config=lama:demo)")
  return found + sep + arg


def resolve_config_argv(argv: list[str], flag: str = "config") -> list[str]:
  """absl command lines: `--config=NAME[:ARG]` (or a path relative to the source tree) made
  a path that `ml_collections.config_flags` loads, before absl parses the flags.

  `--config.field=value` overrides are left alone, and so is a config file that exists
  relative to the working directory (absl reads it as before).

  Raises:
    FileNotFoundError: a `--config` that names no file and no packaged config.
  """
  out = list(argv)
  i = 1
  while i < len(out):
    token = out[i]
    if token == "--":
      break
    dashes = "--" if token.startswith("--") else "-"
    name, eq, value = token[len(dashes):].partition("=")
    if name == flag and token.startswith("-"):
      if not eq and i + 1 < len(out):   # `--config VALUE`
        i += 1
        value = out[i]
      elif not eq:
        break
      path = value.partition(":")[0]
      if not os.path.isfile(path):
        resolved = resolve_config_spec(value)
        out[i] = f"{dashes}{flag}={resolved}" if eq else resolved
    i += 1
  return out


def absl_argv(argv: list[str]) -> list[str]:
  """`resolve_config_argv` for an absl command's entry: a bad `--config` exits with one line."""
  from inpaint_jax import errors  # pylint: disable=g-import-not-at-top

  try:
    return resolve_config_argv(argv)
  except FileNotFoundError as e:
    errors.exit_with(str(e))


def parse_absl_flags(argv: list[str]) -> list[str]:
  """absl flag parsing for the absl commands, with bad flags and configs as one line, exit 2.

  Covers a missing config file, an unknown config field, a value of the wrong type (of a
  flag or a config field) and an error raised by the config file itself (e.g. an unknown
  variant). Pass it as `app.run(main, flags_parser=parse_absl_flags)`.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  from inpaint_jax import errors  # pylint: disable=g-import-not-at-top

  # `--config=lama:demo` (a packaged config) becomes a path absl's config flag can load.
  argv = absl_argv(argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    text = str(e)
    if "Traceback (most recent call last)" in text:
      # An exception raised by the config file: keep its last line only.
      head = text.split("Traceback (most recent call last)", 1)[0]
      text = f"{head.strip()} {text.strip().splitlines()[-1].strip()}"
    errors.exit_with(errors.clean_message(text))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    bad = " ".join(a for a in argv[1:] if a.startswith("--config"))
    what = "unknown config field" if isinstance(e, AttributeError) else "bad config override"
    errors.exit_with(f"{what} {errors.clean_message(e)} (in {bad})")


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`FILE[:ARG]` or `NAME[:ARG]` -> that config's `get_config(ARG)`.

  FILE is relative to the working directory or the source tree; NAME is a packaged config
  (`lama`, `dfnet`, ...; see `find_config_file`).
  """
  path, _, arg = resolve_config_spec(spec).partition(":")
  module_spec = importlib.util.spec_from_file_location("_inpaint_jax_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"--config={spec}: {path} has no get_config()")
  return module.get_config(arg or None)
