r"""Evaluation of a run: the latest checkpoint on a dataset split with fixed mask sets.

`run(config, workdir)` scores the generator of the latest checkpoint in the training workdir
`workdir`, or of the model directory `workdir` (or a classical baseline when
`generator.name` is one of `evaluation.baselines.BASELINES`) and
writes, per mask set, `<workdir>/eval/<set>/results.json`, `results.md` and `report.png`
(see `evaluation.scoring` and `evaluation.report`). The composite
`mask * prediction + (1 - mask) * image` is scored, as LaMa's evaluator does.

Settings live in the config group `eval` (`config_lib.eval_config()`; defaults are used for a config
without one):

  eval.masks              preset name(s), mask folder(s) or `train` (the run's own
                          training masks, seeded), comma-separated ("thick_256")
  eval.n_images           images to score, 0 = the whole split (capped by a mask folder)
  eval.image_size         images are resized (bicubic) to this shorter side and centre
                          cropped, as LaMa's `gen_mask_dataset.py`; 0 = the mask set's
                          size (256 / 512 for LaMa's presets, the files' size for a
                          folder, data.image_size for the other presets)
  eval.seed               seed of preset mask sets (mask i pairs with image i)
  eval.source, eval.folder, eval.tfds_split
                          the split: data.source / data.folder / data.tfds_split of the
                          run unless set here
  eval.embedded_split     the embedded photos scored: "held_out" (default; the three
                          photos no config trains on), "train" or "all"
  eval.metrics            "psnr,ssim,l1,lpips,fid"
  eval.ssim_mode          "skimage" or "lama"
  eval.lpips_weights, eval.inception_weights
                          converted weight files; without them LPIPS / FID are reported
                          as unavailable
  eval.batch_size         images per generator call
  eval.periodic_n_images  examples of the periodic validation during training, every
                          `eval_every_steps` steps (a top-level field; 0 or absent = off),
                          logged as `val/<set>/<metric>` (the full evaluation's are
                          `eval/<set>/...`)
  eval.periodic_masks     the periodic validation's mask sets ("" = eval.masks)
  eval.data_name          the name of the data scored, compared with the protocol's
                          (default: a description of the split, "embedded:held_out")
  eval.protocol           a paper's protocol (`evaluation.protocol`): after the mask sets,
                          the results are written as its table (eval/table.md,
                          table.json) and printed, published figures beside them

Models are loaded through `inpaint_jax.restore` (a training workdir or a model directory) and
run through `inference.engine`, the eval pass of `inpaint` and `export`.

Entry points: `python -m inpaint_jax.main --config=... --mode=eval --workdir=DIR
[--config.eval.masks=PRESET_OR_DIR]`, and, equivalently, `python -m inpaint_jax.eval_mode
--config=... --workdir=DIR [--masks=...] [--n_images=...]` (flags override `eval.*`); DIR is
a training workdir or a model directory (`eval_mode --checkpoint=MODEL --workdir=OUT` reads
the model from MODEL and writes to OUT).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from inpaint_jax import errors, restore
from inpaint_jax.config_lib import eval_settings
from inpaint_jax.data import image_io, sources
from inpaint_jax.data import mask_sets as masks
from inpaint_jax.data import masks as train_mask_lib
from inpaint_jax.evaluation import baselines, folders, protocol, report, scoring
from inpaint_jax.inference import engine
from inpaint_jax.metrics import pixel
from inpaint_jax.weights import model_dir

EVAL_DIR = "eval"
TRAIN_MASKS = "train"   # the eval.masks entry meaning the run's training mask generator
# Scalar prefixes: the full evaluation (`run`) and the periodic validation during training.
EVAL_PREFIX, VAL_PREFIX = "eval", "val"


# ------------------------------------------------------------------------------------------
# Images and masks
# ------------------------------------------------------------------------------------------
def center_square(image: np.ndarray, size: int) -> np.ndarray:
  """(H, W, 3) uint8 -> (size, size, 3) float32 in [0, 1]: shorter side to `size`, centre crop."""
  return image_io.center_square(image, size).astype(np.float32) / 255.0


def eval_source(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict):
  """The image source of the eval split: `data` with the `eval.*` overrides."""
  data = config.data.to_dict() if hasattr(config.data, "to_dict") else dict(config.data)
  for field in ("source", "folder", "tfds_split", "embedded_split"):
    if ev.get(field):
      data[field] = ev[field]
  data["small_images"] = "resize"   # every image is resized to eval.image_size anyway
  return sources.build_source(data)


def _example_name(source: Any, i: int) -> str:
  """"000003_rocket": the index (pairs it with mask i) and the file stem when there is one."""
  stem = os.path.splitext(os.path.basename(str(source.describe(i))))[0] if hasattr(
      source, "describe") else ""
  return f"{i:06d}_{stem}" if stem else f"{i:06d}"


def _native_size(spec: str) -> int | None:
  tail = spec.rsplit("_", 1)[-1]
  return int(tail) if spec.split("_")[0] in masks.LAMA_SETS and tail.isdigit() else None


def mask_sets(ev: ml_collections.ConfigDict, n: int, default_size: int,
              specs: str | None = None, train_masks: Any = None,
              field: str = "eval.masks") -> list[tuple[str, np.ndarray]]:
  """[(set name, (n', S, S) uint8 masks)] for `eval.masks`; n' = n (a folder may have fewer).

  `specs` (default `eval.masks`) are comma-separated preset names, mask folders, or
  `train`: the run's own training mask generator (`train_masks`, the config's `masks`
  group) drawn with the set's seed, mask i from `default_rng([seed, i])`, as a preset.
  S is `eval.image_size` when set, else the set's own size: 256 / 512 for LaMa's presets,
  the files' size for a folder, `default_size` for the other presets and `train`.
  """
  out = []
  want = int(ev.image_size)
  for spec in [s.strip() for s in str(ev.masks if specs is None else specs).split(",")
               if s.strip()]:
    if spec == TRAIN_MASKS:
      if train_masks is None:
        raise ValueError(f"config field {field}: {TRAIN_MASKS!r} needs the run's `masks` "
                         "group, which this config does not have")
      size = want or default_size
      gen = train_mask_lib.build(train_masks, field="masks")
      rngs = [np.random.default_rng([int(ev.seed), i]) for i in range(n)]
      out.append((TRAIN_MASKS, (gen.sample_many(rngs, size, size) > 0).astype(np.uint8)))
    elif os.path.isdir(spec):
      files = masks.list_mask_files(spec, field="eval.masks")[:n]
      arr = np.stack([masks.read_mask(os.path.join(spec, f)) for f in files])
      if arr.shape[1] != arr.shape[2] or (want and arr.shape[1] != want):
        raise ValueError(f"config field {field}: masks in {spec!r} are "
                         f"{arr.shape[2]}x{arr.shape[1]}; accepted: square masks"
                         + (f" of eval.image_size={want}" if want else ""))
      out.append((os.path.basename(os.path.normpath(spec)), arr))
    else:
      if spec not in masks.PRESETS:
        raise ValueError(f"config field {field}: {spec!r} is neither a folder nor a mask "
                         f"preset; accepted: {TRAIN_MASKS}, {', '.join(masks.PRESETS)}")
      size = want or _native_size(spec) or default_size
      out.append((spec, masks.generate(spec, n, size, int(ev.seed))))
  if not out:
    raise ValueError(f"config field {field} is empty; give a preset or a folder of masks")
  return out


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------
# (B, S, S, 3) float images in [0, 1], (B, S, S) float masks -> (B, S, S, 3) composites.
Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def load_generator(config: ml_collections.ConfigDict, workdir: str, flag: str = "--workdir"
                   ) -> tuple[Any, Any, dict[str, Any]]:
  """(generator module, its variables, {"model", "step", "checkpoint"}) to evaluate.

  `workdir` is a training workdir (its latest checkpoint; the EMA weights when the run keeps
  an EMA) or a model directory (`python -m inpaint_jax.convert`, `weights.model_dir`); the
  networks are built from the config stored there. `flag` names it in errors.
  """
  if not (model_dir.is_workdir(workdir) or model_dir.is_model_dir(workdir)):
    raise ValueError(f"{flag} {workdir!r}: no checkpoint there (neither a training workdir "
                     f"with checkpoints/ nor a model directory with {model_dir.MANIFEST} and "
                     f"{model_dir.NETS}/); train first (--mode=train), convert published "
                     f"weights (python -m inpaint_jax.convert) or evaluate a baseline "
                     f"(--config.generator.name={'|'.join(baselines.BASELINES)})")
  loaded = restore.load(workdir)
  g_model, variables = restore.generator(loaded), loaded.variables["g"]
  step = loaded.manifest.get("source", {}).get("step")
  info = {"model": f"{loaded.config.generator.name} ({loaded.config.get('variant', '')})",
          "step": None if step is None else int(step),
          "checkpoint": os.path.join(workdir, "checkpoints", str(step)) if step is not None
          else workdir,
          "config": loaded.config}
  return g_model, variables, info


def load_inpainter(config: ml_collections.ConfigDict, workdir: str, flag: str = "--workdir"
                   ) -> tuple[Inpainter, dict[str, Any]]:
  """The model to score (a baseline, a model directory or the latest checkpoint of a
  training workdir) and its description."""
  name = str(config.generator.name)
  if name in baselines.BASELINES:
    return functools.partial(baselines.run_batch, name), {"model": name, "step": None,
                                                         "checkpoint": None}
  g_model, variables, info = load_generator(config, workdir, flag)
  return engine.batch_inpainter(info.pop("config"), g_model, variables), info


def _networks(ev: ml_collections.ConfigDict, metrics: Sequence[str]) -> dict[str, Any]:
  return folders.load_networks(metrics, ev.lpips_weights or None, ev.inception_weights or None)


# ------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------
def score_set(inpaint: Inpainter, images: Sequence[np.ndarray], names: Sequence[str],
              holes: np.ndarray, scorer: scoring.Scorer, batch_size: int,
              hole_values: dict[str, list[np.ndarray]] | None = None) -> float:
  """Inpaints and scores `images` (S, S, 3) with `holes` (N, S, S); returns seconds.

  With `hole_values` ({name: []} for names of `pixel.HOLE_METRICS`), each batch's
  hole-only scores are appended to its lists.
  """
  t0 = time.perf_counter()
  for s in range(0, len(holes), batch_size):
    img = np.stack(images[s:s + batch_size])
    hole = holes[s:s + batch_size].astype(np.float32)
    result = np.clip(inpaint(img, hole), 0.0, 1.0)
    scorer.add(result, img, hole, names[s:s + batch_size])
    if hole_values is not None:
      for m, v in pixel.hole_metrics(result, img, hole).items():
        hole_values[m].append(np.asarray(v, np.float64))
  return time.perf_counter() - t0


def run(config: ml_collections.ConfigDict, workdir: str, checkpoint: str | None = None
        ) -> dict[str, dict[str, Any]]:
  """Scores the run (or baseline) on every mask set; returns {set name: results}.

  The model is `checkpoint` when given, else `workdir` (a training workdir or a model
  directory); the results go to `workdir/eval/<set>/`.
  """
  ev = eval_settings(config)
  metrics = scoring.parse_metrics(ev.metrics, field="eval.metrics")
  # Before any work: the results must have somewhere to go.
  errors.check_output_location(os.path.join(workdir, EVAL_DIR), "--workdir", folder=True)
  source = eval_source(config, ev)
  n = len(source) if int(ev.n_images) <= 0 else min(int(ev.n_images), len(source))
  sets = mask_sets(ev, n, int(config.data.image_size), train_masks=config.get("masks"))
  if ev.protocol:
    protocol.check(ev.protocol)
  inpaint, info = load_inpainter(config, checkpoint or workdir,
                                 "--checkpoint" if checkpoint else "--workdir")
  nets = _networks(ev, metrics)
  raw = [source[i] for i in range(max(len(m) for _, m in sets))]
  by_size: dict[int, list[np.ndarray]] = {}
  out = {}
  for set_name, holes in sets:
    size = holes.shape[1]
    if size not in by_size:
      by_size[size] = [center_square(r, size) for r in raw]
    images = by_size[size]
    names = [_example_name(source, i) for i in range(len(holes))]
    scorer = scoring.Scorer(metrics, lpips_fn=nets["lpips_fn"], fid_fn=nets["fid_fn"],
                            unavailable=nets["unavailable"], ssim_mode=ev.ssim_mode)
    seconds = score_set(inpaint, images[:len(holes)], names, holes, scorer, int(ev.batch_size))
    res = scorer.results()
    res.update({"mask_set": set_name, "image_size": size, "seconds": seconds,
                **info})
    folder = os.path.join(workdir, EVAL_DIR, set_name)
    if jax.process_index() == 0:
      step = "" if info["step"] is None else f", step {info['step']}"
      report.write_dir(folder, res, scorer.examples(), title=f"{info['model']}{step}, {set_name}")
    logging.info("eval %s (%d images, %.1f s): %s -> %s", set_name, res["n_images"], seconds,
                 ", ".join(f"{m} {report.fmt(res.get(m), m)}" for m in metrics), folder)
    print(f"{EVAL_PREFIX}/{set_name}: "
          + ", ".join(f"{m} {report.fmt(res.get(m), m)}" for m in metrics)
          + f" ({res['n_images']} images) -> {folder}")
    out[set_name] = res
  missing = [s for _, s in protocol.rows(ev.protocol) if s not in out]
  if missing:   # eval.masks overridden (--masks): the paper's table would be incomplete
    print(f"no table for {ev.protocol.title!r}: eval.masks does not hold its row(s) "
          f"{', '.join(missing)}")
  elif ev.protocol:
    paper = protocol.table(ev.protocol, out, data_name=data_name(config, ev),
                           model=info["model"])
    if jax.process_index() == 0:
      report.write_table(os.path.join(workdir, EVAL_DIR), paper)
    print(paper["markdown"], end="")
  return out


def data_name(config: ml_collections.ConfigDict, ev: ml_collections.ConfigDict) -> str:
  """`eval.data_name`, or a description of the eval split ("embedded:held_out")."""
  if ev.data_name:
    return str(ev.data_name)
  source = ev.source or config.data.source
  if source == "embedded":
    return f"embedded:{ev.embedded_split}"
  return f"{source}:{ev.folder or config.data.get('folder', '') or ev.tfds_split}"


class PeriodicEval:
  """Metrics during training: `eval.periodic_n_images` examples of every mask set.

  Built once (images, masks and metric networks are prepared here); calling it with the
  generator and its variables returns flat scalars {"val/<set>/<metric>": value} for
  TensorBoard and metrics.jsonl: the configured metrics of the composite, and PSNR / SSIM
  / L1 over the hole alone (`psnr_hole`, ...; `metrics.pixel.hole_metrics`). Example i
  pairs mask i of a set with image i of the split; a split with fewer images than
  examples (the three held-out embedded photos) is cycled, each pass with new masks.
  FID is left out unless Inception weights are configured (and then computed on these
  few images, which only tracks a trend). `set_name` is the first set, which
  `best_metric` reads.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    ev = eval_settings(config)
    self.every_steps = int(config.get("eval_every_steps", 0) or 0)
    self.metrics = scoring.parse_metrics(ev.metrics, field="eval.metrics")
    source = eval_source(config, ev)
    n = int(ev.periodic_n_images)
    self.sets = mask_sets(ev, n, int(config.data.image_size),
                          specs=ev.periodic_masks or ev.masks, train_masks=config.get("masks"),
                          field="eval.periodic_masks" if ev.periodic_masks else "eval.masks")
    self.set_name, self.holes = self.sets[0]
    raw = [source[i] for i in range(min(n, len(source)))]
    self.images_by_set = [[center_square(raw[i % len(raw)], holes.shape[1])
                           for i in range(len(holes))] for _, holes in self.sets]
    self.images = self.images_by_set[0]
    self.nets = _networks(ev, self.metrics)
    self.batch_size = int(ev.batch_size)
    self.ssim_mode = ev.ssim_mode

  @property
  def available(self) -> set[str]:
    """The metrics this evaluator computes (LPIPS / FID need their weights)."""
    return set(self.metrics) - set(self.nets["unavailable"])

  def due(self, step: int) -> bool:
    return self.every_steps > 0 and step % self.every_steps == 0

  def __call__(self, g_model: Any, variables: Any) -> dict[str, float]:
    return self.score(engine.batch_inpainter(self.config, g_model, variables))

  def score(self, inpaint: Inpainter) -> dict[str, float]:
    """{"val/<set>/<metric>": mean} of `inpaint` (a model's or a baseline's) on every set."""
    out = {}
    for (set_name, holes), images in zip(self.sets, self.images_by_set, strict=True):
      scorer = scoring.Scorer(self.metrics, lpips_fn=self.nets["lpips_fn"],
                              fid_fn=self.nets["fid_fn"], unavailable=self.nets["unavailable"],
                              ssim_mode=self.ssim_mode)
      hole_values: dict[str, list[np.ndarray]] = {m: [] for m in pixel.HOLE_METRICS}
      score_set(inpaint, images, [str(i) for i in range(len(holes))], holes, scorer,
                self.batch_size, hole_values)
      res = scorer.results(per_image=False)
      out.update({f"{VAL_PREFIX}/{set_name}/{m}": float(res[m]) for m in self.metrics
                  if res.get(m) is not None})
      out.update({f"{VAL_PREFIX}/{set_name}/{m}": float(np.nanmean(np.concatenate(v)))
                  for m, v in hole_values.items()})
    return out


