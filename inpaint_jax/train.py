"""One train loop for every GAN inpainting family.

`train_and_evaluate(config, workdir)` builds the generator, discriminator and
loss recipes named in the config, jits one iteration (G step, then D step) over
a ('data',) device mesh, and runs it with periodic logging, TensorBoard
summaries, sample grids and orbax checkpoints. It resumes automatically from
the latest checkpoint in `workdir`.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from inpaint_jax import losses, sharding
from inpaint_jax.checkpoint import Checkpointer
from inpaint_jax.data import masks as masks_lib
from inpaint_jax.data import pipeline, sources
from inpaint_jax.models import factory
from inpaint_jax.state import TrainState, split_variables
from inpaint_jax.utils import writers

Batch = dict[str, jax.Array]

# Fault injection for tests: SIGKILL this process right after the checkpoint
# save of this step has started (asynchronously), as a preemption without
# warning would. Unset in normal use.
_KILL_AT_STEP_ENV = "INPAINT_JAX_KILL_AT_STEP"


# ----------------------------------------------------------------------------
# Models and optimisers.
# ----------------------------------------------------------------------------
def make_optimizers(config: ml_collections.ConfigDict):
  """Adam for G and D after global-norm clipping (Lightning gradient_clip_val)."""
  o = config.optim

  def adam(lr):
    chain = [optax.adam(lr, b1=o.b1, b2=o.b2)]
    if o.grad_clip_norm:
      chain.insert(0, optax.clip_by_global_norm(o.grad_clip_norm))
    return optax.chain(*chain)

  return adam(o.g_lr), adam(o.d_lr)


def init_state(config: ml_collections.ConfigDict, g_model: nn.Module, d_model: nn.Module,
               tx_g: optax.GradientTransformation, tx_d: optax.GradientTransformation,
               rng: jax.Array) -> TrainState:
  """Initialises all parameters, statistics and optimiser states."""
  size = config.data.image_size
  g_rng, d_rng, run_rng = jax.random.split(rng, 3)
  image = jnp.zeros((1, size, size, 3), jnp.float32)
  mask = jnp.zeros((1, size, size, 1), jnp.float32)
  g_params, g_vars = split_variables(g_model.init(g_rng, image, mask, train=False))
  d_params, d_vars = split_variables(d_model.init(d_rng, image, train=False))
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params, g_vars=g_vars, g_opt_state=tx_g.init(g_params),
      d_params=d_params, d_vars=d_vars, d_opt_state=tx_d.init(d_params),
      rng=run_rng)


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


# ----------------------------------------------------------------------------
# The jitted iteration.
# ----------------------------------------------------------------------------
def _apply(model: nn.Module, params, variables, *args, train: bool, **kwargs):
  """Applies `model`; in train mode returns (out, updated non-param collections)."""
  all_vars = {"params": params, **variables}
  if train and variables:
    return model.apply(all_vars, *args, train=True, mutable=list(variables), **kwargs)
  return model.apply(all_vars, *args, train=train, **kwargs), variables


def train_step(state: TrainState, batch: Batch, *, g_model: nn.Module, d_model: nn.Module,
               tx_g: optax.GradientTransformation, tx_d: optax.GradientTransformation,
               g_recipe, d_recipe, fresh_fake_for_d: bool) -> tuple[TrainState, dict]:
  """One iteration: a generator step, then a discriminator step.

  Args:
    state: the train state (replicated).
    batch: {"image": (N, H, W, 3) in [0, 1], "mask": (N, H, W, 1), 1 = hole},
      sharded over 'data'.
    g_model, d_model, tx_g, tx_d, g_recipe, d_recipe, fresh_fake_for_d: static
      parts bound with functools.partial.

  Returns:
    (new state, scalar metrics).

  The discriminator's own state (BatchNorm running statistics, spectral-norm
  vectors) advances only in the D step; in the G step D runs in train mode and
  its state updates are dropped.
  """
  image, mask = batch["image"], batch["mask"]
  rng = jax.random.fold_in(state.rng, state.step)
  g_rng, d_rng = jax.random.split(rng)

  def disc_fn(d_params, d_vars):
    return lambda x: _apply(d_model, d_params, d_vars, x, train=True)[0]

  # --- Generator step (D frozen: not differentiated). ---
  def g_loss_fn(g_params):
    outputs, g_vars = _apply(g_model, g_params, state.g_vars, image, mask, train=True)
    disc = disc_fn(state.d_params, state.d_vars)
    inputs = losses.LossInputs(image=image, mask=mask, outputs=outputs,
                               fake=disc(outputs["pred"]), real=disc(image), disc=disc,
                               rng=g_rng)
    total, metrics = losses.evaluate(g_recipe, inputs, prefix="g/")
    return total, (metrics, outputs, g_vars)

  (_, (g_metrics, outputs, g_vars)), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(state.g_params)
  g_updates, g_opt_state = tx_g.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  # --- Discriminator step. ---
  if fresh_fake_for_d:
    fresh, g_vars = _apply(g_model, g_params, g_vars, image, mask, train=True)
    fake_image = jax.lax.stop_gradient(fresh["pred"])
  else:
    fake_image = jax.lax.stop_gradient(outputs["pred"])

  def d_loss_fn(d_params):
    real, d_vars = _apply(d_model, d_params, state.d_vars, image, train=True)
    fake, d_vars = _apply(d_model, d_params, d_vars, fake_image, train=True)
    inputs = losses.LossInputs(image=image, mask=mask, outputs={"pred": fake_image},
                               fake=fake, real=real, disc=disc_fn(d_params, state.d_vars),
                               rng=d_rng)
    total, metrics = losses.evaluate(d_recipe, inputs, prefix="d/")
    return total, (metrics, d_vars)

  (_, (d_metrics, d_vars)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt_state = tx_d.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  metrics = {**g_metrics, **d_metrics,
             "g/grad_norm": optax.tree.norm(g_grads),
             "d/grad_norm": optax.tree.norm(d_grads),
             "g/param_norm": optax.tree.norm(g_params),
             "d/param_norm": optax.tree.norm(d_params)}
  new_state = state.replace(step=state.step + 1, g_params=g_params, g_vars=g_vars,
                            g_opt_state=g_opt_state, d_params=d_params, d_vars=d_vars,
                            d_opt_state=d_opt_state)
  return new_state, metrics


def predict(state: TrainState, batch: Batch, *, g_model: nn.Module) -> dict[str, jax.Array]:
  """Eval-mode prediction and composite `mask * pred + (1 - mask) * image`."""
  outputs, _ = _apply(g_model, state.g_params, state.g_vars, batch["image"], batch["mask"],
                      train=False)
  pred = outputs["pred"]
  composite = batch["mask"] * pred + (1.0 - batch["mask"]) * batch["image"]
  return {"pred": pred, "composite": composite}


# ----------------------------------------------------------------------------
# Setup shared by training and the CLI modes.
# ----------------------------------------------------------------------------
def build(config: ml_collections.ConfigDict):
  """Returns (g_model, d_model, tx_g, tx_d) for the config."""
  g_model = factory.build_generator(config)
  d_model = factory.build_discriminator(config)
  tx_g, tx_d = make_optimizers(config)
  return g_model, d_model, tx_g, tx_d


def _check_config(config: ml_collections.ConfigDict) -> None:
  for field in ("batch_size", "total_steps", "checkpoint_every_steps", "log_every_steps"):
    if int(config[field]) <= 0:
      raise ValueError(f"config field {field}={config[field]} must be a positive integer")
  for group in ("generator", "discriminator"):
    for label in config.losses[group]:
      entry = config.losses[group][label]
      if "fn" not in entry or "weight" not in entry:
        raise ValueError(
            f"config field losses.{group}.{label} needs 'fn' and 'weight'; got {dict(entry)}")


def make_batches(config: ml_collections.ConfigDict) -> pipeline.InpaintBatches:
  source = sources.build_source(config.data)
  mask_gen = masks_lib.build(config.masks)
  return pipeline.InpaintBatches(
      source, mask_gen, image_size=config.data.image_size,
      global_batch_size=config.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      random_flip=config.data.random_flip, prefetch=config.data.prefetch)


class _StopRequest:
  """Turns SIGTERM into a request to save and stop after the current step."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def install(self) -> None:
    # With jax.distributed, JAX's preemption notifier owns SIGTERM and every
    # process learns of it through `reached_preemption`; a Python handler
    # would replace it, so install ours only for single-process runs.
    if jax.process_count() == 1:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning("SIGTERM received: saving a checkpoint after this step, then exiting.")
    self.requested = True

  def uninstall(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       *, step_callback: Callable[[int], None] | None = None) -> TrainState:
  """Trains until `config.total_steps`, resuming from `workdir` if possible.

  Args:
    config: a locked config from `configs/`.
    workdir: where checkpoints, TensorBoard events, metrics.jsonl and sample
      grids go.
    step_callback: called with the step number after each finished step
      (tests use it to simulate crashes).

  Returns:
    The final train state.
  """
  _check_config(config)
  is_writer = jax.process_index() == 0
  writer = writers.MetricWriter(workdir, enabled=is_writer)
  writer.write_hparams(config.to_dict())
  logging.info("process %d/%d, %d local / %d global devices: %s", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)

  # ---- Mesh. ----
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.batch_size)
  repl = sharding.replicated(mesh)

  # ---- Input pipeline (started early so prefetch overlaps compilation). ----
  batches = make_batches(config)

  # ---- Models, optimisers, state. ----
  g_model, d_model, tx_g, tx_d = build(config)
  init_fn = functools.partial(init_state, config, g_model, d_model, tx_g, tx_d)
  with jax.set_mesh(mesh):
    state = jax.jit(init_fn, out_shardings=repl)(jax.random.PRNGKey(config.seed))
  logging.info("generator_params: %d, discriminator_params: %d",
               count_params(state.g_params), count_params(state.d_params))

  # ---- Resume. ----
  ckpt = Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
  latest = ckpt.latest_step()
  if latest is not None:
    state, meta = ckpt.restore(latest, state)
    logging.info("Resumed from %s at step %d (data position %s).", ckpt.directory, latest,
                 meta.get("data_position"))
  start_step = int(jax.device_get(state.step))

  # ---- Jitted functions. ----
  step_fn = jax.jit(
      functools.partial(train_step, g_model=g_model, d_model=d_model, tx_g=tx_g, tx_d=tx_d,
                        g_recipe=config.losses.generator.to_dict(),
                        d_recipe=config.losses.discriminator.to_dict(),
                        fresh_fake_for_d=config.fresh_fake_for_d),
      out_shardings=(repl, repl), donate_argnums=0)
  predict_fn = jax.jit(functools.partial(predict, g_model=g_model), out_shardings=repl)

  # A fixed batch for sample grids: the first few examples of step 0.
  sample_local = batches.batch_at(0)
  with jax.set_mesh(mesh):
    sample_batch = sharding.global_batch(sample_local, mesh)

  def meta(step):
    return {"step": step, "data_position": step, "config": config.to_json_best_effort()}

  def write_samples(step, state):
    with jax.set_mesh(mesh):
      out = jax.device_get(predict_fn(state, sample_batch))
    # Predictions are replicated; inputs come from this process's rows, which
    # on process 0 are the first rows of the global batch.
    n = min(4, sample_local["image"].shape[0])
    image, mask = sample_local["image"][:n], sample_local["mask"][:n]
    masked = image * (1.0 - mask) + mask  # holes shown white
    grid = writers.image_grid([masked, out["pred"][:n], out["composite"][:n], image])
    writer.write_images(step, {"samples": grid})

  # ---- Train loop. ----
  stop = _StopRequest()
  stop.install()
  data_iter = batches.iterate(start_step)
  progress = writers.Progress(config.total_steps, start_step, time.time())
  pending: list[dict[str, jax.Array]] = []
  step = start_step
  if start_step >= config.total_steps:
    logging.info("Nothing to do: step %d >= total_steps %d.", start_step, config.total_steps)
  else:
    logging.info("Training from step %d to %d; the first step compiles (can take a minute).",
                 start_step, config.total_steps)
  try:
    while step < config.total_steps:
      local = next(data_iter)
      with jax.set_mesh(mesh):
        batch = sharding.global_batch(local, mesh)
        state, metrics = step_fn(state, batch)
      step += 1
      pending.append(metrics)
      is_last = step == config.total_steps

      if step % config.log_every_steps == 0 or is_last or step == start_step + 1:
        fetched = jax.device_get(pending)
        pending = []
        scalars = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
        bad = [k for k, v in scalars.items() if not np.isfinite(v)]
        if bad:
          raise RuntimeError(
              f"non-finite loss values {bad} between steps {step - len(fetched) + 1} and "
              f"{step}; lower the learning rates (optim.g_lr / optim.d_lr) or check the data")
        timing = progress.update(step, time.time())
        writers.log_line(step, config.total_steps,
                         {k: v for k, v in scalars.items() if "norm" not in k},
                         timing["steps_per_sec"], timing["eta_sec"])
        writer.write_scalars(step, {**scalars, "steps_per_sec": timing["steps_per_sec"]})

      if step % config.image_every_steps == 0 or is_last:
        write_samples(step, state)  # all processes run the jitted predict

      if step_callback is not None:
        step_callback(step)

      preempted = stop.requested or (jax.process_count() > 1 and ckpt.reached_preemption(step))
      if step % config.checkpoint_every_steps == 0 or is_last or preempted:
        ckpt.save(step, state, meta(step), force=True)
      if os.environ.get(_KILL_AT_STEP_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
      if preempted:
        logging.warning("Stopping at step %d after a preemption request; checkpoint saved.",
                        step)
        break
  finally:
    stop.uninstall()
    for obj in (data_iter, batches):  # stop prefetch threads
      close = getattr(obj, "close", None)
      if close is not None:
        close()
    ckpt.close()
    writer.close()
  return state
