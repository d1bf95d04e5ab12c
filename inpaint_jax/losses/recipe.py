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

More options every term accepts (all handled here):
  * `space=` ("unit" default, "imagenet", "symmetric"): the value space the term
    reads `pred` and `image` in. Generators return [0, 1] images; a family whose
    official losses compare ImageNet-normalised ((x - mean) / std) or [-1, 1]
    (2x - 1) tensors (DCF) sets it so the values match the official ones.
  * `nan_value=` (default None): a non-finite value is replaced by this one (DCF
    replaces a NaN / inf frequency or VGG term by 0).
  * `scale_by=` (default None): a generator output (`name` or `name[i]`, a scalar)
    the value is multiplied by before weighting, e.g. a 0/1 flag for outputs that
    exist only for some batches (DCF's stage heads: `stage_active[i]`).
  * `ramp=` (default None): a weight schedule {to, over_steps, every (1)}: the
    weight goes linearly from `weight` at step 0 to `to` at `over_steps`, held
    constant over blocks of `every` steps (an epoch-wise ramp: every = the steps
    per epoch), then stays at `to`. Needs `LossInputs.step`.

Totals (`total=` of `evaluate`, from the config's `losses.generator_total` /
`losses.discriminator_total`): {clamp (None), nan_fallback (())}: the weighted
sum is replaced by min(total, clamp), and when it is not finite, by the sum of
the listed terms' values before weighting (DCF: clamp 100, fallback Charbonnier
+ boundary).
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
    step: the training iteration (() int32), for weight schedules (`ramp=`);
      None outside training.
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
  step: jax.Array | None = None

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
    value = _lookup(outputs, output, "output", where)
  h, w = value.shape[1:3]
  image, mask = inputs.image, inputs.mask
  if (h, w) != image.shape[1:3]:
    image, mask = resize_bilinear(image, h, w), resize_bilinear(mask, h, w)
  return dataclasses.replace(inputs, image=image, mask=mask,
                             outputs={**outputs, "pred": value})


SPACES = ("unit", "imagenet", "symmetric")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def to_space(x: jax.Array, space: str, label: str = "") -> jax.Array:
  """[0, 1] images -> the `space=` a term reads them in (see the module docstring)."""
  if space == "unit":
    return x
  if space == "imagenet":
    return (x - jnp.asarray(_IMAGENET_MEAN, x.dtype)) / jnp.asarray(_IMAGENET_STD, x.dtype)
  if space == "symmetric":
    return 2.0 * x - 1.0
  raise ValueError(f"loss term {label!r}: space={space!r} is not accepted; accepted: "
                   f"{', '.join(SPACES)}")


def _scalar_output(inputs: LossInputs, name: str, label: str) -> jax.Array:
  value = _lookup(inputs.outputs, name, "scale_by", f"loss term {label!r}: ")
  return jnp.asarray(value, jnp.float32)


def ramped_weight(weight: float, ramp: Mapping[str, Any] | None, step: jax.Array | None,
                  label: str = "") -> jax.Array | float:
  """The weight at `step` under `ramp` = {to, over_steps, every} (module docstring)."""
  if ramp is None:
    return weight
  ramp = dict(ramp)
  unknown = sorted(set(ramp) - {"to", "over_steps", "every"})
  if unknown or "to" not in ramp or int(ramp.get("over_steps", 0)) <= 0:
    raise ValueError(f"loss term {label!r}: ramp needs to= and over_steps > 0 (and optional "
                     f"every=), got {ramp}")
  if step is None:
    raise ValueError(f"loss term {label!r}: ramp= needs the training step (LossInputs.step)")
  every = max(1, int(ramp.get("every", 1)))
  t = (jnp.asarray(step, jnp.int32) // every * every).astype(jnp.float32)
  frac = jnp.minimum(t / float(ramp["over_steps"]), 1.0)
  return weight + (float(ramp["to"]) - weight) * frac


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


def evaluate(recipe: Mapping[str, Any], inputs: LossInputs, prefix: str = "",
             total: Mapping[str, Any] | None = None
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Sums `weight * term` over the recipe.

  Args:
    recipe: label -> {fn, weight, **options}; `output`, `target`, `clamp`,
      `space`, `nan_value`, `scale_by` and `ramp` are read here (see the module
      docstring); the other options go to the term.
    inputs: the tensors the terms read.
    prefix: prepended to metric names (e.g. "g/").
    total: optional {clamp, nan_fallback} for the sum (module docstring).

  Returns:
    (total, metrics) where metrics holds each weighted term under
    `prefix + label`, extra values a term reports under `prefix + label/name`,
    and the total under `prefix + "total"`.
  """
  total_opts = dict(total or {})
  unknown = sorted(set(total_opts) - {"clamp", "nan_fallback"})
  if unknown:
    raise ValueError(f"loss total options {unknown} are not accepted; accepted: clamp, "
                     "nan_fallback")
  fallback_labels = tuple(total_opts.get("nan_fallback") or ())
  for label in fallback_labels:
    if label not in recipe:
      raise ValueError(f"loss total nan_fallback names {label!r}, which is not a term of the "
                       f"recipe ({', '.join(sorted(recipe))})")
  unweighted: dict[str, jax.Array] = {}
  total_value = jnp.zeros((), jnp.float32)
  metrics: dict[str, jax.Array] = {}
  for label, fn_name, weight, options in config_lib.recipe_items(recipe):
    options = dict(options)
    ramp = options.pop("ramp", None)
    if weight == 0.0 and not (ramp and float(dict(ramp).get("to", 0.0))):
      continue  # a switched-off term costs nothing (and needs no inputs)
    fn = LOSSES.get(fn_name, field=f"losses.*.{label}.fn")
    term_inputs = select_output(inputs, str(options.pop("output", "pred")), label)
    term_inputs = select_target(term_inputs, options.pop("target", None), label)
    space = str(options.pop("space", "unit"))
    if space != "unit":
      term_inputs = dataclasses.replace(
          term_inputs, image=to_space(term_inputs.image, space, label),
          outputs={**term_inputs.outputs, "pred": to_space(term_inputs.pred, space, label)})
    clamp = options.pop("clamp", None)
    nan_value = options.pop("nan_value", None)
    scale_by = options.pop("scale_by", None)
    try:
      out = fn(term_inputs, **options)
    except TypeError as e:
      raise TypeError(f"loss term {label!r} ({fn_name}): bad options {options}: {e}") from e
    value, extra = out if isinstance(out, tuple) else (out, {})
    if nan_value is not None:
      value = jnp.where(jnp.isfinite(value), value, float(nan_value))
    if clamp is not None:
      value = jnp.minimum(value, clamp)
    if scale_by is not None:
      value = value * _scalar_output(inputs, str(scale_by), label)
    unweighted[label] = value
    value = ramped_weight(weight, ramp, inputs.step, label) * value
    total_value = total_value + value
    metrics[prefix + label] = value
    for name, v in extra.items():
      metrics[f"{prefix}{label}/{name}"] = v
  if total_opts.get("clamp") is not None:
    total_value = jnp.minimum(total_value, float(total_opts["clamp"]))
  if fallback_labels:
    fallback = sum((unweighted.get(k, jnp.zeros((), jnp.float32)) for k in fallback_labels),
                   jnp.zeros((), jnp.float32))
    total_value = jnp.where(jnp.isfinite(total_value), total_value, fallback)
  metrics[prefix + "total"] = total_value
  return total_value, metrics
