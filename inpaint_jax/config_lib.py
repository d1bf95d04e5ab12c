"""Helpers shared by the files in `configs/`.

Config files import from the installed package (never from a sibling file) so
that `--config=configs/lama.py:big` works from any working directory.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Mapping
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
    "demo": dict(batch_size=4, total_steps=500, checkpoint_every_steps=250,
                 log_every_steps=25, image_every_steps=100, image_size=64),
    "tiny": dict(batch_size=4, total_steps=4, checkpoint_every_steps=2,
                 log_every_steps=1, image_every_steps=2, image_size=32),
}


def set_run_length(c: ml_collections.ConfigDict, preset: str, **overrides: Any) -> None:
  """Sets batch size, step counts, periods and image size from `RUN_LENGTHS[preset]`.

  Args:
    c: the config to change in place (fields `batch_size`, `total_steps`,
      `checkpoint_every_steps`, `log_every_steps`, `image_every_steps`,
      `data.image_size`).
    preset: `demo` or `tiny`.
    **overrides: values replacing the preset's (e.g. `total_steps=300`).
  """
  values = {**RUN_LENGTHS[preset], **overrides}
  c.data.image_size = values.pop("image_size")
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


def eval_config() -> ml_collections.ConfigDict:
  """The `eval` config group with its defaults (fields: `inpaint_jax.evaluation.runner`)."""
  return ml_collections.ConfigDict(dict(
      masks="thick_256", n_images=0, image_size=0, seed=0, source="", folder="",
      tfds_split="", metrics="psnr,ssim,l1,lpips,fid", ssim_mode="skimage",
      lpips_weights="", inception_weights="", batch_size=8, periodic_n_images=16))


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


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`FILE[:ARG]` -> FILE's `get_config(ARG)`; FILE relative to the cwd or the source tree."""
  path, _, arg = spec.partition(":")
  candidates = [path] if os.path.isabs(path) else [path, os.path.join(SOURCE_ROOT, path)]
  found = next((p for p in candidates if os.path.isfile(p)), None)
  if found is None:
    raise FileNotFoundError(f"--config={spec}: no such config file {path!r}")
  module_spec = importlib.util.spec_from_file_location("_inpaint_jax_config", found)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"--config={spec}: {path} has no get_config()")
  return module.get_config(arg or None)
