"""One train loop for every inpainting family.

`train_and_evaluate(config, workdir)` builds the networks, optimisers, frozen
backbones and loss recipes named in the config (`inpaint_jax.system`), jits
the iteration over a ('data',) device mesh and runs it with periodic logging,
TensorBoard summaries, sample grids, validation and orbax checkpoints. It
resumes automatically from the newest checkpoint in `workdir` that restores, refuses a
workdir that holds other networks (`inpaint_jax.workdir`) before writing anything, and
stops after saving the current step on Ctrl-C or SIGTERM. One loop serves
every family so that resuming, multi-process runs and the artefacts of a run
behave the same whichever model is trained; what differs between families is
data in the config (networks, loss recipes, schedule).

One iteration (`TrainState.step` counts them):

  G step      generator forward (train mode) on the iteration's first batch,
              the generator recipe (which may read D's outputs, D in train mode
              with its state advancing as in PyTorch, and frozen backbones),
              one update of G (and of its EMA).
  D steps     when the run has a D and the iteration is a D iteration
              (`train.d_every`): `train.n_critic` updates of D, each on a
              generator pass made after the G update (`train.fresh_fake_for_d`,
              LaMa's Lightning loop) and on the iteration's batches
              (`train.critic_batches`: `fresh` = batch j for critic step j,
              `same` = the first batch every time).

Iteration s reads the data steps [s * k, (s + 1) * k) with k = n_critic for
fresh critic batches and 1 otherwise, so the data at every iteration is a pure
function of (seed, s) and resuming needs only the step. Training phases
(`phases`) switch learning rates and freeze BatchNorm from a given iteration
on; the phase is a function of the step too.

The module reads top to bottom: the schedule (what each iteration does), the
jitted iteration (`train_step`), then the run: `train_and_evaluate`, its set-up,
the step loop, the periodic work (sample grids, validation) and the end of a
run. The log says what a long set-up phase is doing before it starts (loading
frozen loss networks, compiling the train step, the first sample grid and
validation); the ETA of the progress lines times only the steps after the
first, which includes compilation (`inpaint_jax.progress`); a finished run
names its last checkpoint and the `inpaint_jax.inpaint` command that uses it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from inpaint_jax import checkpoint as checkpoint_lib
from inpaint_jax import errors, losses, restore, sharding, writers
from inpaint_jax import progress as progress_lib
from inpaint_jax import system as system_lib
from inpaint_jax import workdir as workdir_lib
from inpaint_jax.backbones import frozen as frozen_lib
from inpaint_jax.checkpoint import Checkpointer
from inpaint_jax.data import masks as masks_lib
from inpaint_jax.data import pipeline, sources
from inpaint_jax.evaluation import runner
from inpaint_jax.inference import engine
from inpaint_jax.metrics import summary
from inpaint_jax.models import api, norm
from inpaint_jax.state import NetState, TrainState

Batch = dict[str, jax.Array]
PyTree = Any
CRITIC_BATCHES = ("fresh", "same")


# ----------------------------------------------------------------------------
# The schedule: what each iteration does.
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Phase:
  """A training phase: from `start_step` on, until the next phase starts.

  Attributes:
    name: its label in `phases` ("main" for the implicit first phase).
    start_step: the first iteration of the phase.
    freeze_bn: every BatchNorm of every network uses its running statistics
      and does not update them (parameters are still trained).
    lr: net name -> constant learning rate replacing that net's schedule.
  """

  name: str
  start_step: int
  freeze_bn: bool = False
  lr: tuple[tuple[str, float], ...] = ()


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """The static shape of one iteration (one compiled step per distinct plan)."""

  do_d: bool
  n_critic: int
  critic_batches: str
  fresh_fake_for_d: bool
  phase: Phase
  ema_decay: float
  bn_group_size: int


def parse_phases(config: ml_collections.ConfigDict, nets: Mapping[str, Any]) -> list[Phase]:
  """The phases of `config.phases`, sorted by start, with the implicit first one."""
  phases = [Phase("main", 0)]
  for name, cfg in dict(config.get("phases") or {}).items():
    cfg = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    field = f"phases.{name}"
    unknown = sorted(set(cfg) - {"start_step", "freeze_bn", "lr"})
    if unknown:
      raise ValueError(f"config field(s) {', '.join(f'{field}.{k}' for k in unknown)} not "
                       "accepted; accepted: start_step, freeze_bn, lr")
    start = int(cfg.get("start_step", -1))
    if start <= 0:
      raise ValueError(f"config field {field}.start_step={start} must be a positive "
                       "iteration (the first phase starts at 0)")
    lr = dict(cfg.get("lr") or {})
    for net in lr:
      if net not in nets:
        raise ValueError(f"config field {field}.lr.{net}: no network {net!r}; networks: "
                         f"{', '.join(nets)}")
    phases.append(Phase(name, start, bool(cfg.get("freeze_bn", False)),
                        tuple(sorted((k, float(v)) for k, v in lr.items()))))
  phases.sort(key=lambda p: p.start_step)
  starts = [p.start_step for p in phases]
  if len(set(starts)) != len(starts):
    raise ValueError(f"config field phases: two phases start at the same step ({starts})")
  return phases


def phase_at(phases: list[Phase], step: int) -> Phase:
  current = phases[0]
  for p in phases:
    if p.start_step <= step:
      current = p
  return current


class Schedule:
  """Maps an iteration to its `StepPlan` and its data steps."""

  def __init__(self, config: ml_collections.ConfigDict, system: system_lib.System):
    t = config.train
    self.d_every = int(t.d_every)
    self.n_critic = int(t.n_critic)
    self.critic_batches = str(t.critic_batches)
    if self.d_every < 1:
      raise ValueError(f"config field train.d_every={self.d_every} must be >= 1")
    if self.n_critic < 1:
      raise ValueError(f"config field train.n_critic={self.n_critic} must be >= 1")
    if self.critic_batches not in CRITIC_BATCHES:
      raise ValueError(f"config field train.critic_batches={self.critic_batches!r} is not "
                       f"accepted; accepted: {', '.join(CRITIC_BATCHES)}")
    self.has_d = system.has_discriminator
    self.fresh_fake_for_d = bool(t.fresh_fake_for_d)
    self.ema_decay = system_lib.ema_decay(config)
    self.bn_group_size = int(config.batchnorm.group_size)
    if self.bn_group_size < 0 or (self.bn_group_size
                                  and config.batch_size % self.bn_group_size):
      raise ValueError(f"config field batchnorm.group_size={self.bn_group_size} must be 0 "
                       f"(whole batch) or divide batch_size={config.batch_size}")
    self.phases = parse_phases(config, system.nets)

  @property
  def batches_per_step(self) -> int:
    """k: data steps read per iteration."""
    return self.n_critic if (self.has_d and self.critic_batches == "fresh") else 1

  def is_d_step(self, step: int) -> bool:
    """D is stepped on iterations d_every, 2 * d_every, ... (counting from 1)."""
    return self.has_d and (step + 1) % self.d_every == 0

  def plan(self, step: int) -> StepPlan:
    return StepPlan(do_d=self.is_d_step(step), n_critic=self.n_critic,
                    critic_batches=self.critic_batches,
                    fresh_fake_for_d=self.fresh_fake_for_d,
                    phase=phase_at(self.phases, step), ema_decay=self.ema_decay,
                    bn_group_size=self.bn_group_size)


# ----------------------------------------------------------------------------
# The jitted iteration.
# ----------------------------------------------------------------------------
def apply_net(model: nn.Module, variables: PyTree, *args: Any, train: bool,
              rngs: dict[str, jax.Array] | None = None, freeze_bn: bool = False,
              **kwargs: Any) -> tuple[Any, PyTree]:
  """Applies `model`; returns (output, updated non-param collections).

  In train mode every non-param collection is updatable (BatchNorm statistics,
  spectral-norm vectors), except `batch_stats` when `freeze_bn`, which makes
  BatchNorm use its running statistics (see `models.norm`).
  """
  collections = {k: v for k, v in variables.items() if k != "params"}
  mutable = [k for k in collections if not (freeze_bn and k == "batch_stats")]
  if train and mutable:
    out, updates = model.apply(variables, *args, train=True, mutable=mutable, rngs=rngs,
                               **kwargs)
    return out, {**collections, **updates}
  return model.apply(variables, *args, train=train, rngs=rngs, **kwargs), collections


def _rngs(key: jax.Array) -> dict[str, jax.Array]:
  dropout, noise = jax.random.split(key)
  return {"dropout": dropout, "noise": noise}


def _take(batches: Batch, j: int | jax.Array) -> Batch:
  return {k: v[j] for k, v in batches.items()}


def _lr(system: system_lib.System, plan: StepPlan, net: str, step: jax.Array) -> jax.Array:
  override = dict(plan.phase.lr).get(net)
  if override is not None:
    return jnp.asarray(override, jnp.float32)
  return system.optimizers[net].schedule(step)


def train_step(state: TrainState, batches: Batch, frozen_vars: PyTree, *,
               system: system_lib.System, plan: StepPlan) -> tuple[TrainState, dict]:
  """One iteration (see the module docstring).

  Args:
    state: the train state (replicated).
    batches: {"image": (k, N, H, W, 3) in [0, 1], "mask": (k, N, H, W, 1),
      1 = hole}: the iteration's k batches, sharded over 'data' on axis 1.
    frozen_vars: name -> variables of the frozen backbones (replicated); an
      argument, so the weights are inputs of the compiled program, not
      constants.
    system: static: modules, optimisers, config.
    plan: static: what this iteration does.

  Returns:
    (new state, scalar metrics).
  """
  with norm.batch_stat_groups(plan.bn_group_size):
    return _train_step(state, batches, frozen_vars, system=system, plan=plan)


def _train_step(state, batches, frozen_vars, *, system, plan):
  recipes = system.config.losses
  g_model = system.nets["g"]
  d_model = system.nets.get("d")
  freeze_bn = plan.phase.freeze_bn
  frozen = frozen_lib.bind(system.frozen_modules, frozen_vars)
  rng = jax.random.fold_in(state.rng, state.step)
  g_rng, g_loss_rng, d_rng = jax.random.split(rng, 3)
  g_net = state.nets["g"]
  d_net = state.nets.get("d")
  first = _take(batches, 0)

  def discriminate(d_params, d_cols, x, mask, key):
    return apply_net(d_model, {"params": d_params, **d_cols}, system.d_view(x, mask),
                     train=True, rngs=_rngs(key), freeze_bn=freeze_bn)

  # --- Generator step. D is not differentiated, but runs in train mode and its
  # state (BatchNorm statistics, spectral-norm vectors) advances, as in PyTorch
  # where D is frozen only through requires_grad. ---
  def g_loss_fn(g_params):
    image, mask = first["image"], first["mask"]
    outputs, g_cols = apply_net(g_model, {"params": g_params, **g_net.collections}, image, mask,
                                train=True, rngs=_rngs(g_rng), freeze_bn=freeze_bn)
    d_cols = d_net.collections if d_net is not None else {}
    real = fake = disc = fake_image = None
    if d_net is not None:
      k_real, k_fake, k_disc = jax.random.split(jax.random.fold_in(g_rng, 1), 3)
      fake_image, real_image = system.d_inputs(image, mask, outputs)
      cols0 = d_cols
      real, d_cols = discriminate(d_net.params, d_cols, real_image, mask, k_real)
      fake, d_cols = discriminate(d_net.params, d_cols, fake_image, mask, k_fake)
      disc = lambda x: discriminate(d_net.params, cols0, x, mask, k_disc)[0]
    inputs = losses.LossInputs(image=image, mask=mask, outputs=outputs, fake=fake, real=real,
                               disc=disc, fake_image=fake_image, frozen=frozen,
                               rng=g_loss_rng, step=state.step)
    total, metrics = losses.evaluate(recipes.generator, inputs, prefix="g/",
                                     total=recipes.get("generator_total"))
    return total, (metrics, outputs, g_cols, d_cols)

  (_, (metrics, outputs, g_cols, d_cols)), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(g_net.params)
  g_lr = _lr(system, plan, "g", state.step)
  g_params, g_opt = system.optimizers["g"].update(g_grads, g_net.opt_state, g_net.params, g_lr)
  metrics.update({"g/grad_norm": optax.tree.norm(g_grads), "g/lr": g_lr,
                  "g/param_norm": optax.tree.norm(g_params)})
  ema = state.ema_params
  if plan.ema_decay > 0:
    ema = jax.tree.map(lambda e, p: plan.ema_decay * e + (1.0 - plan.ema_decay) * p, ema,
                       g_params)
  nets = dict(state.nets)
  nets["g"] = NetState(g_params, g_cols, g_opt)
  if d_net is not None:
    nets["d"] = d_net.replace(collections=d_cols)

  # --- Discriminator steps. ---
  if plan.do_d:
    reuse_g_outputs = plan.n_critic == 1 and not plan.fresh_fake_for_d
    d_opt = system.optimizers["d"]
    d_lr = _lr(system, plan, "d", state.step)

    def critic_step(carry, j):
      d_state, g_cols = carry
      batch = _take(batches, j) if plan.critic_batches == "fresh" else first
      image, mask = batch["image"], batch["mask"]
      key = jax.random.fold_in(d_rng, j)
      k_g, k_real, k_fake, k_disc, k_loss = jax.random.split(key, 5)
      if reuse_g_outputs:
        fake_outputs = outputs
      else:
        fake_outputs, g_cols = apply_net(g_model, {"params": g_params, **g_cols}, image, mask,
                                         train=True, rngs=_rngs(k_g), freeze_bn=freeze_bn)
      fake_outputs = jax.lax.stop_gradient(fake_outputs)
      fake_image, real_image = system.d_inputs(image, mask, fake_outputs)

      def d_loss_fn(d_params):
        cols0 = d_state.collections
        real, cols = discriminate(d_params, cols0, real_image, mask, k_real)
        fake, cols = discriminate(d_params, cols, fake_image, mask, k_fake)
        # The penalty terms call D again on their own inputs; like PyTorch's
        # double backprop through the real forward, that call starts from the
        # state before the real forward and its updates are dropped.
        disc = lambda x: discriminate(d_params, cols0, x, mask, k_disc)[0]
        inputs = losses.LossInputs(image=image, mask=mask, outputs=fake_outputs, fake=fake,
                                   real=real, disc=disc, fake_image=fake_image, frozen=frozen,
                                   rng=k_loss, step=state.step)
        total, m = losses.evaluate(recipes.discriminator, inputs, prefix="d/",
                                   total=recipes.get("discriminator_total"))
        return total, (m, cols)

      (_, (m, cols)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_state.params)
      params, opt_state = d_opt.update(grads, d_state.opt_state, d_state.params, d_lr)
      m["d/grad_norm"] = optax.tree.norm(grads)
      return (NetState(params, cols, opt_state), g_cols), m

    if plan.n_critic == 1:
      (d_state, g_cols), d_metrics = critic_step((nets["d"], nets["g"].collections), 0)
    else:
      (d_state, g_cols), d_metrics = jax.lax.scan(
          critic_step, (nets["d"], nets["g"].collections), jnp.arange(plan.n_critic))
      d_metrics = jax.tree.map(jnp.mean, d_metrics)  # mean over the critic steps
    nets["d"] = d_state
    nets["g"] = nets["g"].replace(collections=g_cols)
    metrics.update(d_metrics)
    metrics.update({"d/lr": d_lr, "d/param_norm": optax.tree.norm(d_state.params)})

  new_state = state.replace(step=state.step + 1, nets=nets, ema_params=ema)
  return new_state, metrics


# ----------------------------------------------------------------------------
# The run: set-up, the step loop, periodic work, the end.
# ----------------------------------------------------------------------------
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains until `config.total_steps`, resuming from `workdir` if possible.

  Args:
    config: a locked config from `configs/`.
    workdir: where checkpoints, TensorBoard events, metrics.jsonl and sample
      grids go.

  Returns:
    The final train state.

  Raises:
    errors.UserError: the config, the workdir or its checkpoints do not allow the run
      (nothing was written).
    errors.Interrupted: SIGINT (Ctrl-C) stopped the run; the checkpoint of the step it
      finished is saved.
  """
  # Signals are caught from the start: a Ctrl-C during set-up stops the run before it
  # writes anything, rather than raising KeyboardInterrupt wherever Python happens to be
  # (JAX's garbage-collection callbacks swallow it there).
  stop = _StopRequest()
  stop.install()
  try:
    # Everything up to the first step checks what the user asked for: its
    # errors (bad config fields, paths, files, shapes) become one-line errors.
    with errors.as_user_errors():
      run, state = _set_up(config, workdir, stop)
    samples = _SampleGrids(run)
    fault = _fault_hook()
    data_iter = run.batches.iterate(run.start_step * run.batches_per_step)
    try:
      state, step = _step_loop(run, state, data_iter, samples, stop, fault)
    finally:
      _close(run, data_iter)
  finally:
    stop.uninstall()
  if stop.interrupted:
    raise errors.Interrupted(_interrupted_message(run, step))
  if step >= config.total_steps:
    _report_finished(run, step)
  return state


@dataclasses.dataclass
class _Run:
  """What the step loop works with, built once by `_set_up`.

  The train state is not kept here: each step donates its buffers, so it travels
  separately from one step to the next.
  """

  config: ml_collections.ConfigDict
  workdir: str
  system: system_lib.System
  schedule: Schedule
  writer: writers.MetricWriter
  mesh: jax.sharding.Mesh
  repl: jax.sharding.NamedSharding
  batches: pipeline.InpaintBatches
  frozen_vars: PyTree
  ckpt: Checkpointer
  validation: _Validation
  start_step: int
  # Seconds of training (compilation and validation included) before this process
  # resumed, from the checkpoint; and when this process's step loop started.
  seconds_before: float = 0.0
  loop_started: float = dataclasses.field(default_factory=time.time)

  @property
  def batches_per_step(self) -> int:
    return self.schedule.batches_per_step

  def train_seconds(self) -> float:
    """Seconds this run has trained so far, over all its resumes."""
    return self.seconds_before + time.time() - self.loop_started

  def meta(self, step: int) -> dict[str, Any]:
    """The metadata a checkpoint stores beside the state.

    `data_position` is for people reading it: the data of an iteration follow from its step.
    `train_seconds` carries the run's training time over resumes (`stop_after_minutes`).
    """
    return {"step": step, "data_position": step * self.batches_per_step,
            "train_seconds": round(self.train_seconds(), 3),
            "config": self.config.to_json_best_effort()}


# ----------------------------------------------------------------------------
# Set-up: data, state, resume.
# ----------------------------------------------------------------------------
def _set_up(config: ml_collections.ConfigDict, workdir: str, stop: _StopRequest
            ) -> tuple[_Run, TrainState]:
  """Builds the run and its train state, resumed from `workdir` when it has a checkpoint.

  Everything that can refuse the run comes before the first file is written (workdir
  identity, data, frozen networks, checkpoints, init_from, validation settings), so a
  refused or interrupted start leaves the workdir as it was.
  """
  check_config(config)
  errors.check_output_location(workdir, "--workdir", folder=True)
  system = system_lib.build(config)
  schedule = Schedule(config, system)
  identity = workdir_lib.identity_of(system, workdir_lib.abstract_state(system))
  workdir_lib.check(workdir, identity)
  logging.info("process %d/%d, %d local / %d global devices: %s", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.batch_size)
  repl = sharding.replicated(mesh)
  batches = make_batches(config)  # built early, so its decode threads overlap compilation
  stop.check_set_up()
  state, frozen_vars = _initial_state(config, system, mesh, repl)
  stop.check_set_up()
  state, meta, skipped = _resume(config, system, workdir, state, repl)
  start_step = int(jax.device_get(state.step))
  validation = _Validation(config, workdir)
  stop.check_set_up()

  # The run starts: from here on it writes into the workdir.
  previous = workdir_lib.previous_config(workdir, meta)
  fresh = not os.path.exists(os.path.join(workdir, workdir_lib.CONFIG_FILE))
  writer = writers.MetricWriter(workdir, enabled=jax.process_index() == 0)
  if fresh:
    # config.json is the first run's config; the writer also shows it in TensorBoard.
    writer.write_hparams(config.to_dict())
  if jax.process_index() == 0:
    written = workdir_lib.record(workdir, config, identity, start_step, previous)
    if written is not None:
      logging.info("config changes since the run before this one in %s (same networks): %s; "
                   "saved as %s", workdir,
                   "; ".join(workdir_lib.config_changes(previous,
                                                        workdir_lib.config_dict(config))),
                   written)
  ckpt = Checkpointer(workdir, max_to_keep=config.keep_checkpoints,
                      protected_steps=[s for s, _ in skipped])
  validation.open()
  run = _Run(config, workdir, system, schedule, writer, mesh, repl, batches, frozen_vars, ckpt,
             validation, start_step, seconds_before=float(meta.get("train_seconds", 0.0)))
  return run, state


def check_config(config: ml_collections.ConfigDict) -> None:
  for field in ("batch_size", "total_steps", "checkpoint_every_steps", "log_every_steps"):
    if int(config[field]) <= 0:
      raise ValueError(f"config field {field}={config[field]} must be a positive integer")


def make_batches(config: ml_collections.ConfigDict) -> pipeline.InpaintBatches:
  source = sources.build_source(config.data)
  mask_gen = masks_lib.build(config.masks)
  return pipeline.InpaintBatches(
      source, mask_gen, image_size=config.data.image_size,
      global_batch_size=config.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      augment=config.data.augment, prefetch=config.data.prefetch)


def _initial_state(config: ml_collections.ConfigDict, system: system_lib.System,
                   mesh: jax.sharding.Mesh, repl: jax.sharding.NamedSharding
                   ) -> tuple[TrainState, PyTree]:
  """A fresh train state and the frozen backbones' variables, both replicated on `mesh`."""
  if system.backbones:
    # Reading and converting their weight files takes a while for ResNet-50 / VGG-19.
    logging.info("loading the frozen networks of the losses (%s) ...",
                 ", ".join(sorted(system.backbones)))
  frozen_host = system.load_frozen()
  logging.info("initialising the networks (compiles their initialiser) ...")
  with jax.set_mesh(mesh):
    state = jax.jit(functools.partial(system_lib.init_state, system),
                    out_shardings=repl)(jax.random.PRNGKey(config.seed))
    frozen_vars = jax.device_put(frozen_host, repl)
  counts = system_lib.param_counts(state)
  logging.info("generator_params: %d, discriminator_params: %d", counts["generator_params"],
               counts["discriminator_params"])
  return state, frozen_vars


def _resume(config: ml_collections.ConfigDict, system: system_lib.System, workdir: str,
            state: TrainState, repl: jax.sharding.NamedSharding
            ) -> tuple[TrainState, dict[str, Any], list[tuple[int, str]]]:
  """The newest checkpoint that restores; on a fresh run `init_from`'s weights, if configured.

  Returns:
    (state, the restored checkpoint's JSON item ({} when none), [(step, problem)] of the
    newer checkpoints that did not restore, left on disk).

  Raises:
    errors.UserError: checkpoints exist but none restores, or they hold other networks.
  """
  directory = os.path.join(os.path.abspath(workdir), checkpoint_lib.LATEST_DIR)

  def skip(step: int, problem: str) -> None:
    logging.warning("checkpoint step %d does not restore, skipped (its files are left as they "
                    "are): %s", step, problem)

  try:
    found = checkpoint_lib.restore_newest(directory, state, on_skip=skip)
  except checkpoint_lib.CheckpointMismatch as e:
    raise errors.UserError(
        f"--workdir {workdir}: its checkpoints do not fit this config: {e}; use the config "
        f"that made them, or another --workdir (with --config.init_from={workdir} to start "
        f"from its weights)") from e
  if found.step is None and found.skipped:
    step, problem = found.skipped[0]
    raise errors.UserError(
        f"--workdir {workdir}: no checkpoint restores ({len(found.skipped)} tried, newest "
        f"first); step {step}: {problem}. Restore the files from a copy, or start afresh "
        f"with another --workdir")
  if found.step is None:
    if config.get("init_from"):
      state = jax.device_put(restore.init_from(system, state, config.init_from), repl)
      logging.info("Initialised the networks from %s.", config.init_from)
    return state, {}, []
  logging.info("Resumed from %s at step %d (data position %s).", directory, found.step,
               found.meta.get("data_position"))
  return found.state, found.meta, found.skipped


# ----------------------------------------------------------------------------
# The step loop.
# ----------------------------------------------------------------------------
def _step_loop(run: _Run, state: TrainState, data_iter: Iterator[dict[str, np.ndarray]],
               samples: _SampleGrids, stop: _StopRequest, fault: Callable[[int], None]
               ) -> tuple[TrainState, int]:
  """Iterates from `run.start_step` to `total_steps`, or until a stop request.

  Returns:
    (the final state, the step it reached).
  """
  config, k = run.config, run.batches_per_step
  # A time budget (0 = none) over all resumes: the run saves and stops once it is spent,
  # and resuming with a larger budget goes on exactly.
  budget_seconds = 60.0 * float(config.get("stop_after_minutes", 0) or 0)
  step_fns = _StepFunctions(run.system, run.repl)
  progress = progress_lib.Progress(config.total_steps, run.start_step, time.time())
  pending: list[dict[str, jax.Array]] = []
  step = run.start_step
  phase = phase_at(run.schedule.phases, step)
  if step >= config.total_steps:
    logging.info("Nothing to do: step %d >= total_steps %d.", step, config.total_steps)
  else:
    logging.info("Training from step %d to %d in phase %r.", step, config.total_steps,
                 phase.name)
  run.loop_started = time.time()
  if budget_seconds and run.seconds_before >= budget_seconds:
    logging.info("Nothing to do: the run has trained %.1f of stop_after_minutes=%s minutes.",
                 run.seconds_before / 60.0, config.stop_after_minutes)
    return state, step
  while step < config.total_steps:
    plan = run.schedule.plan(step)
    if plan.phase != phase:
      phase = plan.phase
      logging.info("Step %d: entering phase %r (freeze_bn=%s, lr=%s).", step, phase.name,
                   phase.freeze_bn, dict(phase.lr) or "schedule")
    local = stack_batches([next(data_iter) for _ in range(k)])
    train_fn = step_fns.get(plan)
    with jax.set_mesh(run.mesh):
      batch = sharding.global_batch(local, run.mesh, stacked=True)
      state, metrics = train_fn(state, batch, run.frozen_vars)
    step += 1
    pending.append(metrics)
    out_of_time = bool(budget_seconds) and run.train_seconds() >= budget_seconds
    is_last = step == config.total_steps or out_of_time

    # The first step gets its own line: it says how long compilation took.
    if step % config.log_every_steps == 0 or is_last or step == run.start_step + 1:
      _log_metrics(run, progress, step, pending)
      pending = []
    if step % config.image_every_steps == 0 or is_last:
      samples.write(step, state)
    if run.validation.due(step) or (is_last and run.validation.enabled):
      _validate(run, state, step)
    preempted = stop.should_stop(run.ckpt, step)
    if step % config.checkpoint_every_steps == 0 or is_last or preempted:
      run.ckpt.save(step, state, run.meta(step), force=True)
    fault(step)
    if preempted:
      logging.warning("Stopping at step %d after %s; checkpoint saved.", step,
                      "Ctrl-C (SIGINT)" if stop.interrupted else "a preemption request")
      break
    if out_of_time:
      logging.info("Stopping at step %d: stop_after_minutes=%s reached; checkpoint saved.",
                   step, config.stop_after_minutes)
      break
  return state, step


def stack_batches(local: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """k local batches -> {"image": (k, N_local, ...), ...}."""
  return {k: np.stack([b[k] for b in local]) for k in local[0]}


class _StepFunctions:
  """The jitted `train_step`, one per distinct `StepPlan`, compiled on first use."""

  def __init__(self, system: system_lib.System, repl: jax.sharding.NamedSharding):
    self._system = system
    self._repl = repl
    self._fns: dict[StepPlan, Callable] = {}

  def get(self, plan: StepPlan) -> Callable:
    """The step for `plan`; says so in the log when calling it will compile."""
    if plan not in self._fns:
      if self._fns:
        logging.info("compiling the train step for a new kind of iteration (D update: %s, "
                     "phase %r) ...", plan.do_d, plan.phase.name)
      else:
        logging.info("compiling the train step (first step; takes a while on CPU) ...")
      self._fns[plan] = jax.jit(functools.partial(train_step, system=self._system, plan=plan),
                                out_shardings=(self._repl, self._repl), donate_argnums=0)
    return self._fns[plan]


def _log_metrics(run: _Run, progress: progress_lib.Progress, step: int,
                 pending: list[dict[str, jax.Array]]) -> None:
  """Fetches the metrics of the steps since the last log line; logs and writes their means.

  The fetch waits for those steps to finish, so the time read after it is when `step`
  was reached.
  """
  fetched = jax.device_get(pending)
  scalars = _mean_metrics(fetched)
  bad = [k for k, v in scalars.items() if not np.isfinite(v)]
  if bad:
    raise RuntimeError(
        f"non-finite loss values {bad} between steps {step - len(fetched) + 1} and "
        f"{step}; lower the learning rates (optim.g.lr / optim.d.lr) or check the data")
  timing = progress.update(step, time.time())
  losses_only = {k: v for k, v in scalars.items() if "norm" not in k and not k.endswith("/lr")}
  progress_lib.log_line(step, run.config.total_steps, losses_only, timing)
  run.writer.write_scalars(step, {**scalars, "steps_per_sec": timing.steps_per_sec})


def _mean_metrics(fetched: list[dict[str, Any]]) -> dict[str, float]:
  """Means over the steps that report each key (D keys appear on D iterations only)."""
  keys = sorted({k for m in fetched for k in m})
  return {k: float(np.mean([m[k] for m in fetched if k in m])) for k in keys}


# ----------------------------------------------------------------------------
# Periodic work: sample grids, validation.
# ----------------------------------------------------------------------------
def sample_outputs(system: system_lib.System, state: TrainState, image: jax.Array,
                   mask: jax.Array) -> dict[str, jax.Array]:
  """What the sample grids show, in eval mode (EMA generator weights when kept).

  Returns:
    "pred", "composite" (N, H, W, 3) and, with a D, its outputs on the real and
    the fake image, sigmoid(logits) resized (nearest) to (N, H, W, 1)
    ("d_real", "d_fake"), as LaMa's `store_discr_outputs_for_vis`.
  """
  out = engine.predict(api.get_adapter(system.config), system.nets["g"],
                       system_lib.generator_variables(state), image, mask)
  sample = {"pred": out["pred"], "composite": out["composite"]}
  if system.has_discriminator:
    fake, real = system.d_inputs(image, mask, out)
    d_vars = state.nets["d"].variables
    for name, x in (("d_real", real), ("d_fake", fake)):
      logits, _ = system.nets["d"].apply(d_vars, system.d_view(x, mask), train=False)
      sample[name] = jax.image.resize(jax.nn.sigmoid(logits), image.shape[:3] + (1,),
                                      "nearest")
  return sample


# Column labels of the sample grids, each with a short form for narrow images.
_D_COLUMNS = (("d_real", ("D(real)", "D real")), ("d_fake", ("D(fake)", "D fake")))
_COLUMNS = (("masked input", "input"), ("prediction", "pred"), ("composite", "comp"), "target")


def sample_grid(local: Mapping[str, np.ndarray], out: Mapping[str, np.ndarray],
                max_rows: int = 4) -> np.ndarray:
  """The sample grid: one row per example, one labelled column per view.

  Args:
    local: this process's batch, {"image": (N, H, W, 3), "mask": (N, H, W, 1)}.
    out: `sample_outputs` on the global batch, as host arrays.
    max_rows: at most this many examples.

  Returns:
    (writers.LABEL_HEIGHT + n * H, C * W, 3) for n = min(max_rows, N) examples and the
    columns masked input (holes white) | prediction | composite | target, then
    D(real) | D(fake) (grey) when the run has a D.
  """
  # Predictions are replicated; inputs come from this process's rows, which
  # on process 0 are the first rows of the global batch.
  n = min(max_rows, local["image"].shape[0])
  image, mask = local["image"][:n], local["mask"][:n]
  masked = image * (1.0 - mask) + mask  # holes shown white
  columns = [masked, out["pred"][:n], out["composite"][:n], image]
  labels = list(_COLUMNS)
  for key, label in _D_COLUMNS:
    if key in out:
      columns.append(np.repeat(out[key][:n], 3, axis=-1))
      labels.append(label)
  return writers.image_grid(columns, labels)


class _SampleGrids:
  """Sample grids of a fixed batch: the first examples of step 0."""

  def __init__(self, run: _Run):
    self._mesh = run.mesh
    self._writer = run.writer
    self._fn = jax.jit(functools.partial(sample_outputs, run.system), out_shardings=run.repl)
    self._local = run.batches.batch_at(0)
    with jax.set_mesh(run.mesh):
      self._batch = sharding.global_batch(self._local, run.mesh)
    self._compiled = False

  def write(self, step: int, state: TrainState) -> None:
    """Every process runs the jitted predict; process 0's writer writes the grid."""
    if not self._compiled:
      logging.info("writing the first sample grid (compiles the eval-mode generator) ...")
      self._compiled = True
    with jax.set_mesh(self._mesh):
      out = jax.device_get(self._fn(state, self._batch["image"], self._batch["mask"]))
    self._writer.write_images(step, {"samples": sample_grid(self._local, out)})


class _Validation:
  """Periodic scores on a fixed validation set, and the best checkpoints by one of them.

  Config: `eval_every_steps` (0 = off), the `eval` group (mask set, number of
  images, metrics, metric weights; see `inpaint_jax.evaluation.runner`), `best_metric`
  (a metric of the set or a summary such as LaMa's `ssim_fid100_f1`; "" = no
  best checkpoints) and `keep_best`. Every process computes the same scores on
  its own devices, so all of them agree on what the best checkpoints are.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.every = int(config.get("eval_every_steps", 0) or 0)
    self.enabled = self.every > 0
    self.best = None
    self._best_args = None
    self._workdir = workdir
    self._compiled = False
    if not self.enabled:
      return
    logging.info("preparing the validation images and metric networks ...")
    self.periodic = runner.PeriodicEval(config)
    self.prefix = f"{runner.VAL_PREFIX}/{self.periodic.set_name}/"
    self.best_metric = str(config.get("best_metric", "") or "")
    if self.best_metric and int(config.get("keep_best", 0) or 0) > 0:
      missing = sorted(set(summary.needs(self.best_metric)) - self.periodic.available)
      if missing:
        why = self.periodic.nets["unavailable"]
        reasons = "; ".join(f"{m}: {why.get(m, 'not in eval.metrics')}" for m in missing)
        raise ValueError(
            f"config field best_metric={self.best_metric!r} needs {', '.join(missing)}, which "
            f"this run cannot compute ({reasons}); set eval.metrics / eval.inception_weights / "
            f"eval.lpips_weights, choose another best_metric (e.g. ssim, psnr) or set "
            f"keep_best=0")
      self._best_args = dict(max_to_keep=int(config.keep_best), best_metric=self.best_metric,
                             best_mode=summary.mode(self.best_metric))

  def open(self) -> None:
    """Creates the best-checkpoint folder's manager (which creates the folder)."""
    if self._best_args is not None:
      self.best = Checkpointer(self._workdir, **self._best_args)

  def due(self, step: int) -> bool:
    return self.enabled and step % self.every == 0

  def run(self, g_model: nn.Module, variables: PyTree) -> dict[str, float]:
    if not self._compiled:
      logging.info("running the first validation (%d images; compiles the evaluation) ...",
                   len(self.periodic.images))
      self._compiled = True
    scores = self.periodic(g_model, jax.device_get(variables))
    base = {k[len(self.prefix):]: v for k, v in scores.items() if k.startswith(self.prefix)}
    scores.update({self.prefix + k: v for k, v in summary.derived(base).items()})
    return scores

  def save_best(self, step: int, state: TrainState, meta: dict[str, Any],
                scores: dict[str, float]) -> None:
    if self.best is not None:
      value = scores[self.prefix + self.best_metric]
      self.best.save(step, state, meta, force=True, metrics={self.best_metric: value})

  def close(self) -> None:
    if self.best is not None:
      self.best.close()


def _validate(run: _Run, state: TrainState, step: int) -> None:
  """Scores the generator, writes and logs the scores, keeps the best checkpoints."""
  scores = run.validation.run(run.system.nets["g"], system_lib.generator_variables(state))
  scores["time/train_minutes"] = run.train_seconds() / 60.0
  run.writer.write_scalars(step, scores)
  logging.info("validation at step %d | %s", step,
               " ".join(f"{k}={v:.4g}" for k, v in sorted(scores.items())))
  run.validation.save_best(step, state, run.meta(step), scores)


# ----------------------------------------------------------------------------
# Stopping: signals, test faults, the end of a run.
# ----------------------------------------------------------------------------
class _StopRequest:
  """Turns SIGINT (Ctrl-C) and SIGTERM into a request to save and stop after the current step.

  The handlers only set a flag, which the step loop reads between steps: no
  KeyboardInterrupt is raised inside JAX or orbax, where it could be swallowed by a
  cleanup callback or leave a save half-done. After the first SIGINT, SIGINT gets its
  default action back, so a second Ctrl-C ends the process at once (killed by SIGINT,
  status 130 in a shell); orbax writes each checkpoint into a temporary folder and renames
  it when complete, so the last complete checkpoint stays intact.

  With jax.distributed, JAX's preemption notifier owns SIGTERM and every process learns of
  it through `reached_preemption` at the same step; a Python SIGTERM handler would replace
  it. There, SIGINT is passed on to that notifier as a SIGTERM of this process, so that
  all processes stop at one step and save it together.
  """

  def __init__(self):
    self.requested = False
    self.interrupted = False
    self._multi = False
    self._previous: dict[int, Any] = {}

  def install(self) -> None:
    self._multi = jax.process_count() > 1
    signals = [signal.SIGINT] + ([] if self._multi else [signal.SIGTERM])
    for signum in signals:
      try:
        self._previous[signum] = signal.signal(signum, self._handle)
      except ValueError:  # not the main thread: leave the signals alone
        break

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if signum == signal.SIGINT:
      self.interrupted = True
      signal.signal(signal.SIGINT, signal.SIG_DFL)
      logging.warning("SIGINT (Ctrl-C) received: saving a checkpoint after this step, then "
                      "exiting; press Ctrl-C again to exit at once (the last complete "
                      "checkpoint stays).")
      if self._multi:
        os.kill(os.getpid(), signal.SIGTERM)
        return
    else:
      logging.warning("SIGTERM received: saving a checkpoint after this step, then exiting.")
    self.requested = True

  def should_stop(self, ckpt: Checkpointer, step: int) -> bool:
    """Whether to save `step` and stop; every process gets the same answer."""
    if self._multi:
      return ckpt.reached_preemption(step)
    return self.requested

  def check_set_up(self) -> None:
    """Between set-up phases: Ctrl-C before the first step ends the run there.

    (SIGTERM during set-up is answered like any other: the first step is saved.)
    """
    if self.interrupted:
      raise errors.Interrupted("Ctrl-C during set-up, before the first step: nothing was "
                               "trained or written")

  def uninstall(self) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}


def _interrupted_message(run: _Run, step: int) -> str:
  """The line a Ctrl-C'd run ends with: which checkpoint holds its work, how to go on."""
  return (f"Ctrl-C at step {step}/{run.config.total_steps}; checkpoint saved: "
          f"{os.path.join(run.ckpt.directory, str(step))}; run the same command to resume")


FAULT_ENV = "INPAINT_JAX_FAULT"


class InjectedFault(RuntimeError):
  """Raised by the `raise@N` test fault."""


FAULTS = ("raise", "sigkill", "sigint", "sigint2")


def _fault_hook() -> Callable[[int], None]:
  """The test hook: `INPAINT_JAX_FAULT=KIND@N`, else a no-op.

  After step N has finished and its checkpoint save (if any) has started:
  `raise@N` raises `InjectedFault` (a crash), `sigkill@N` sends SIGKILL to this process
  (a preemption without warning, possibly in the middle of an asynchronous save),
  `sigint@N` sends SIGINT (Ctrl-C pressed while step N + 1 runs: that step is saved and
  the run stops) and `sigint2@N` sends SIGINT twice (Ctrl-C pressed twice: the process
  ends at once, possibly in the middle of a save). Unset in normal use.
  """
  spec = os.environ.get(FAULT_ENV, "")
  if not spec:
    return lambda step: None
  kind, _, at = spec.partition("@")
  if kind not in FAULTS or not at.isdigit():
    raise ValueError(f"{FAULT_ENV}={spec!r}: expected KIND@N with KIND one of "
                     f"{', '.join(FAULTS)}")
  at_step = int(at)

  def hook(step: int) -> None:
    if step != at_step:
      return
    if kind == "raise":
      raise InjectedFault(f"{FAULT_ENV}: injected crash after step {step}")
    if kind == "sigkill":
      os.kill(os.getpid(), signal.SIGKILL)
    for _ in range(2 if kind == "sigint2" else 1):
      os.kill(os.getpid(), signal.SIGINT)

  return hook


def _close(run: _Run, data_iter: Iterator[dict[str, np.ndarray]]) -> None:
  """Stops the prefetch threads and waits for the checkpoint saves in flight."""
  for obj in (data_iter, run.batches):
    close = getattr(obj, "close", None)
    if close is not None:
      close()
  run.ckpt.close()
  run.validation.close()
  run.writer.close()


def inpaint_command(workdir: str) -> str:
  """The shell command that inpaints an image with the latest checkpoint of `workdir`."""
  # The interpreter of this run, relative when it lies under the current folder (a venv),
  # so the line runs as printed.
  python = os.path.relpath(sys.executable)
  if python.startswith(os.pardir):
    python = sys.executable
  return (f"{shlex.quote(python)} -m inpaint_jax.inpaint --checkpoint {shlex.quote(workdir)} "
          "--image photo.png --mask photo_mask.png --output out.png")


def _report_finished(run: _Run, step: int) -> None:
  """On process 0: the last checkpoint of the finished run and how to try it."""
  if jax.process_index() != 0:
    return
  # Every run that reaches total_steps saves that step (or resumed from a checkpoint past
  # it), and the close before this call waited for the save to complete.
  logging.info("Finished: step %d/%d. Last checkpoint: step %d, %s", step,
               run.config.total_steps, step, os.path.join(run.ckpt.directory, str(step)))
  logging.info("Try it on an image and its mask (white = hole): %s", inpaint_command(run.workdir))
