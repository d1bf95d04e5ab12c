"""Weighted sums of registered loss terms, chosen by the config.

A term is a pure function `fn(inputs: LossInputs, **options) -> scalar` or
`-> (scalar, {name: scalar})` registered with `@LOSSES.register(name)`. A recipe
is a mapping `label -> {fn, weight, **options}` (see `config_lib.term`). The
trainer calls `evaluate` and never knows a loss by name, so a loss variant is a
config change or a new function of a few lines plus its registration.

Every term accepts the option `output=` (handled here, never by the term): the
generator output the term reads as `inputs.pred`, e.g. `"pred"` (default),
`"coarse"`, `"texture"`, `"scales[2]"` (item 2 of the list `outputs["scales"]`)
or `"composite"` (`mask * pred + (1 - mask) * image`, computed when the
generator does not return it). When that output is smaller than the image, the
term sees `image` and `mask` resized to its size with bilinear interpolation
without anti-aliasing (PyTorch `F.interpolate(..., 'bilinear',
align_corners=False)`, what DFNet, RFR-Net and DCF do for their multi-scale
targets), so the mask can take fractional values there.

Every term also accepts `target=` (default None: the image): the name of a
generator output (`name` or `name[i]`) that the term reads as `image` instead,
without gradient, e.g. DGFNet's texture terms compare `output="texture"` with
`target="texture_target"`. It must have the selected output's shape.

Every term also accepts `clamp=` (default None): the term's value is replaced
by min(value, clamp) before weighting, as DCF clamps most of its terms; like
`torch.clamp`, a clamped term passes no gradient.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from inpaint_jax import config_lib
from inpaint_jax.registry import LOSSES

DiscOut = tuple[jax.Array, list[jax.Array]]  # (logits (N,h,w,1), feature maps)


@dataclasses.dataclass(frozen=True)
class LossInputs:
  """Everything a loss term may read. Arrays are NHWC float32.

  Attributes:
    image: (N, H, W, 3) ground truth in [0, 1].
    mask: (N, H, W, 1) 1 = hole.
    outputs: the generator's full output dict: `pred` (N, H, W, 3) and any
      extras the family returns (`scales`, `coarse`, ...). In the D step they
      are the detached outputs of the generator pass that made the fake.
    fake: discriminator output on the image shown as fake (`fake_image`, with
      the mask channel when `losses.d_input_mask`); None without a D.
    real: discriminator output on `image`; None without a D.
    disc: the discriminator as a function of an RGB image (the mask channel is
      appended when configured), in train mode, closed over the parameters
      being differentiated (for R1 / gradient penalties); None without a D.
    fake_image: (N, H, W, 3), what D scored as fake (`losses.d_input`: the raw
      prediction or the composite), detached in the D step.
    frozen: frozen backbone name -> callable `FrozenNet` (see
      `inpaint_jax.frozen`).
    rng: a PRNG key for stochastic terms (e.g. WGAN-GP interpolation).
  """

  image: jax.Array
  mask: jax.Array
  outputs: Mapping[str, Any]
  fake: DiscOut | None = None
  real: DiscOut | None = None
  disc: Callable[[jax.Array], DiscOut] | None = None
  fake_image: jax.Array | None = None
  frozen: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  rng: jax.Array | None = None

  @property
  def pred(self) -> jax.Array:
    return self.outputs["pred"]


def needs_discriminator(fn: Callable[..., Any]) -> Callable[..., Any]:
  """Marks a loss term that reads `fake`, `real` or `disc`.

  A recipe without a discriminator refuses such a term, naming it, before
  anything is compiled.
  """
  fn.needs_discriminator = True
  return fn


_OUTPUT_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(-?\d+)\])?$")


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  """(N, H, W, C) -> (N, height, width, C), half-pixel centres, no anti-aliasing.

  Matches PyTorch `F.interpolate(x, size, mode='bilinear', align_corners=False)`
  for downscaling (`jax.image.resize` anti-aliases by default, PyTorch does not).
  """
  if x.shape[1:3] == (height, width):
    return x
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[3]), "bilinear",
                          antialias=False)


def select_output(inputs: LossInputs, output: str, label: str = "") -> LossInputs:
  """The inputs a term sees with `output=...`: `pred` is that generator output.

  Args:
    inputs: the full inputs.
    output: `name` or `name[i]` (an item of a list output), or `composite`.
    label: the recipe label, for error messages.

  Returns:
    A LossInputs whose `pred` is the selected (N, h, w, 3) array and whose
    `image` / `mask` are resized to (h, w) when it is smaller than the image.
  """
  if output == "pred":
    return inputs
  where = f"loss term {label!r}: " if label else ""
  match = _OUTPUT_RE.match(output)
  if not match:
    raise ValueError(f"{where}output={output!r} is not `name` or `name[i]`")
  name, index = match.group(1), match.group(2)
  outputs = inputs.outputs
  if name == "composite" and name not in outputs and index is None:
    value = inputs.mask * inputs.pred + (1.0 - inputs.mask) * inputs.image
  elif name not in outputs:
    raise ValueError(f"{where}output={output!r}: the generator returns no {name!r}; it "
                     f"returns: {', '.join(sorted(outputs))} (and composite)")
  else:
    value = outputs[name]
    if index is not None:
      if not isinstance(value, list | tuple):
        raise ValueError(f"{where}output={output!r}: {name!r} is not a list")
      i = int(index)
      if not -len(value) <= i < len(value):
        raise ValueError(f"{where}output={output!r}: {name!r} has {len(value)} items")
      value = value[i]
    elif isinstance(value, list | tuple):
      raise ValueError(f"{where}output={output!r}: {name!r} is a list of {len(value)}; "
                       f"pick one with {name}[i]")
  h, w = value.shape[1:3]
  image, mask = inputs.image, inputs.mask
  if (h, w) != image.shape[1:3]:
    image, mask = resize_bilinear(image, h, w), resize_bilinear(mask, h, w)
  return dataclasses.replace(inputs, image=image, mask=mask,
                             outputs={**outputs, "pred": value})


def _lookup(outputs: Mapping[str, Any], spec: str, what: str, where: str) -> jax.Array:
  """outputs[name] or outputs[name][i] for spec `name` / `name[i]`."""
  match = _OUTPUT_RE.match(spec)
  if not match:
    raise ValueError(f"{where}{what}={spec!r} is not `name` or `name[i]`")
  name, index = match.group(1), match.group(2)
  if name not in outputs:
    raise ValueError(f"{where}{what}={spec!r}: the generator returns no {name!r}; it "
                     f"returns: {', '.join(sorted(outputs))}")
  value = outputs[name]
  if index is not None:
    if not isinstance(value, list | tuple):
      raise ValueError(f"{where}{what}={spec!r}: {name!r} is not a list")
    i = int(index)
    if not -len(value) <= i < len(value):
      raise ValueError(f"{where}{what}={spec!r}: {name!r} has {len(value)} items")
    value = value[i]
  elif isinstance(value, list | tuple):
    raise ValueError(f"{where}{what}={spec!r}: {name!r} is a list of {len(value)}; "
                     f"pick one with {name}[i]")
  return value


def select_target(inputs: LossInputs, target: str | None, label: str = "") -> LossInputs:
  """The inputs a term sees with `target=...`: `image` is that output, detached.

  Args:
    inputs: the inputs after `select_output`.
    target: None (keep the image) or `name` / `name[i]` of a generator output.
    label: the recipe label, for error messages.
  """
  if target is None:
    return inputs
  where = f"loss term {label!r}: " if label else ""
  value = _lookup(inputs.outputs, str(target), "target", where)
  if value.shape != inputs.pred.shape:
    raise ValueError(f"{where}target={target!r} has shape {value.shape}, the term's "
                     f"prediction {inputs.pred.shape}")
  return dataclasses.replace(inputs, image=jax.lax.stop_gradient(value))


def evaluate(recipe: Mapping[str, Any], inputs: LossInputs,
             prefix: str = "") -> tuple[jax.Array, dict[str, jax.Array]]:
  """Sums `weight * term` over the recipe.

  Args:
    recipe: label -> {fn, weight, **options}; `output`, `target` and `clamp` are
      read here (see the module docstring); the other options go to the term.
    inputs: the tensors the terms read.
    prefix: prepended to metric names (e.g. "g/").

  Returns:
    (total, metrics) where metrics holds each weighted term under
    `prefix + label`, extra values a term reports under `prefix + label/name`,
    and the total under `prefix + "total"`.
  """
  total = jnp.zeros((), jnp.float32)
  metrics: dict[str, jax.Array] = {}
  for label, fn_name, weight, options in config_lib.recipe_items(recipe):
    if weight == 0.0:
      continue  # a switched-off term costs nothing (and needs no inputs)
    fn = LOSSES.get(fn_name, field=f"losses.*.{label}.fn")
    options = dict(options)
    term_inputs = select_output(inputs, str(options.pop("output", "pred")), label)
    term_inputs = select_target(term_inputs, options.pop("target", None), label)
    clamp = options.pop("clamp", None)
    try:
      out = fn(term_inputs, **options)
    except TypeError as e:
      raise TypeError(f"loss term {label!r} ({fn_name}): bad options {options}: {e}") from e
    value, extra = out if isinstance(out, tuple) else (out, {})
    if clamp is not None:
      value = jnp.minimum(value, clamp)
    value = weight * value
    total = total + value
    metrics[prefix + label] = value
    for name, v in extra.items():
      metrics[f"{prefix}{label}/{name}"] = v
  metrics[prefix + "total"] = total
  return total, metrics
