"""Optimisers and learning-rate schedules from config, one per network.

Each network `n` has a group `optim.<n>` (see `configs/lama.py`):

  name            adam | adamw | sgd
  lr              base learning rate
  b1, b2, eps     Adam / AdamW moments (PyTorch defaults 0.9, 0.999, 1e-8)
  momentum        SGD momentum (PyTorch semantics: buf = m * buf + g)
  weight_decay    adam / sgd: L2 added to the gradient (PyTorch `Adam`,
                  `SGD`); adamw: decoupled decay (PyTorch `AdamW`)
  grad_clip_norm  clip the network's gradient to this global norm before the
                  update (0 = off), with PyTorch's / Lightning's rule
                  g * min(1, max_norm / (norm + 1e-6))
  schedule        constant | step | cosine | warmup
  warmup_steps    linear warm-up from 0 over this many iterations (any schedule;
                  required > 0 for `warmup`, which is warm-up then constant)
  decay_every     step: multiply the rate by `decay_factor` every this many
                  iterations (PyTorch `StepLR`)
  decay_factor    step: the factor (e.g. 0.1)
  decay_steps     cosine: iterations from `lr` down to `min_lr`
                  (PyTorch `CosineAnnealingLR`, T_max = decay_steps)
  min_lr          cosine: the floor

Rates are functions of the global iteration (`TrainState.step`), not of how
often the network was updated, so a network stepped every k-th iteration or
n times per iteration follows the same calendar as the generator, and resuming
needs only the step. Training phases (`phases` in the config) can replace a
network's rate from their first iteration on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

PyTree = Any
Schedule = Callable[[jax.Array], jax.Array]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "cosine", "warmup")

DEFAULTS = dict(name="adam", lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, momentum=0.0,
                weight_decay=0.0, grad_clip_norm=0.0, schedule="constant", warmup_steps=0,
                decay_every=0, decay_factor=0.1, decay_steps=0, min_lr=0.0)

TORCH_CLIP_EPS = 1e-6


def optim_group(**overrides: Any) -> dict[str, Any]:
  """A full `optim.<net>` group: DEFAULTS with `overrides` (for config files)."""
  unknown = sorted(set(overrides) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"unknown optimiser fields {unknown}; accepted: {sorted(DEFAULTS)}")
  return {**DEFAULTS, **overrides}


def clip_by_global_norm_torch(max_norm: float) -> optax.GradientTransformation:
  """Global-norm clipping as `torch.nn.utils.clip_grad_norm_` / Lightning.

  g * min(1, max_norm / (||g|| + 1e-6)). `optax.clip_by_global_norm` has no
  1e-6, which differs by a relative 1e-6 / ||g||.
  """

  def update(updates, state, params=None):
    del params
    norm = optax.tree.norm(updates)
    coef = jnp.minimum(1.0, max_norm / (norm + TORCH_CLIP_EPS))
    return jax.tree.map(lambda g: (g * coef).astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_schedule(cfg: Mapping[str, Any], field: str) -> Schedule:
  """The rate as a function of the global iteration for `optim.<net>` = cfg."""
  kind = cfg["schedule"]
  lr = float(cfg["lr"])
  warmup = int(cfg["warmup_steps"])
  if warmup < 0:
    raise ValueError(f"config field {field}.warmup_steps={warmup} must be >= 0")
  if kind == "constant":
    base = lambda step: jnp.asarray(lr, jnp.float32)
  elif kind == "warmup":
    if warmup <= 0:
      raise ValueError(f"config field {field}.warmup_steps must be > 0 for schedule 'warmup'")
    base = lambda step: jnp.asarray(lr, jnp.float32)
  elif kind == "step":
    every, factor = int(cfg["decay_every"]), float(cfg["decay_factor"])
    if every <= 0:
      raise ValueError(f"config field {field}.decay_every={every} must be > 0 for schedule "
                       "'step'")
    base = lambda step: lr * jnp.power(jnp.float32(factor), (step // every).astype(jnp.float32))
  elif kind == "cosine":
    total, floor = int(cfg["decay_steps"]), float(cfg["min_lr"])
    if total <= 0:
      raise ValueError(f"config field {field}.decay_steps={total} must be > 0 for schedule "
                       "'cosine'")

    def base(step):
      t = jnp.minimum(step, total).astype(jnp.float32)
      return floor + (lr - floor) * 0.5 * (1.0 + jnp.cos(math.pi * t / total))
  else:
    raise ValueError(f"config field {field}.schedule={kind!r} is not accepted; accepted: "
                     f"{', '.join(SCHEDULES)}")
  if warmup <= 0:
    return lambda step: base(jnp.asarray(step))

  def warmed(step):
    step = jnp.asarray(step)
    ramp = jnp.minimum(1.0, (step + 1).astype(jnp.float32) / warmup)
    return ramp * base(step)

  return warmed


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """A network's gradient transformation (everything but the rate) and rate.

  `update` returns new params = params - lr(step) * direction, where the
  direction comes from `tx` (clipping, L2 / decoupled decay, Adam moments or
  SGD momentum).
  """

  tx: optax.GradientTransformation
  schedule: Schedule

  def init(self, params: PyTree) -> PyTree:
    return self.tx.init(params)

  def update(self, grads: PyTree, opt_state: PyTree, params: PyTree,
             lr: jax.Array) -> tuple[PyTree, PyTree]:
    """One step at rate `lr`; returns (new params, new optimiser state)."""
    direction, opt_state = self.tx.update(grads, opt_state, params)
    new = jax.tree.map(lambda p, d: (p - lr * d).astype(p.dtype), params, direction)
    return new, opt_state


def make_optimizer(cfg: Mapping[str, Any], field: str) -> Optimizer:
  """Builds the optimiser of `optim.<net>` = cfg; `field` names it in errors."""
  cfg = dict(cfg)
  unknown = sorted(set(cfg) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"config field(s) {', '.join(f'{field}.{k}' for k in unknown)} not "
                     f"accepted; accepted: {', '.join(sorted(DEFAULTS))}")
  cfg = {**DEFAULTS, **cfg}
  name = cfg["name"]
  if name not in OPTIMIZERS:
    raise ValueError(f"config field {field}.name={name!r} is not accepted; accepted: "
                     f"{', '.join(OPTIMIZERS)}")
  wd = float(cfg["weight_decay"])
  chain = []
  if float(cfg["grad_clip_norm"]) > 0:
    chain.append(clip_by_global_norm_torch(float(cfg["grad_clip_norm"])))
  if name in ("adam", "sgd") and wd:
    chain.append(optax.add_decayed_weights(wd))  # L2 in the gradient, as PyTorch Adam / SGD
  if name in ("adam", "adamw"):
    chain.append(optax.scale_by_adam(b1=float(cfg["b1"]), b2=float(cfg["b2"]),
                                     eps=float(cfg["eps"])))
  elif float(cfg["momentum"]):
    chain.append(optax.trace(decay=float(cfg["momentum"])))
  if name == "adamw" and wd:
    chain.append(optax.add_decayed_weights(wd))  # decoupled, as PyTorch AdamW
  tx = optax.chain(*chain) if chain else optax.identity()
  return Optimizer(tx=tx, schedule=make_schedule(cfg, field))


def update_count(opt_state: PyTree) -> jax.Array | None:
  """How many updates an optimiser state has seen (Adam's `count`), if it keeps one."""
  for leaf_state in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "count")):
    if hasattr(leaf_state, "count"):
      return leaf_state.count
  return None
