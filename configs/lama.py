r"""LaMa (Suvorov et al., WACV 2022) with Fourier convolutions.

Variants (the text after ':'):
  fourier  lama-fourier: 9 FFC residual blocks, 27,048,835 generator params (default).
  big      big-lama: 18 blocks, 50,975,875 params, global batch 120 (8 GPUs x 15).
  demo     a small CPU variant for the quick start (runs in minutes on 2 cores).
  tiny     a very small variant for tests (32 px, 4 steps).

Run:
  python -m inpaint_jax.main --config=configs/lama.py --workdir=runs/lama
  python -m inpaint_jax.main --config=configs/lama.py:big --mode=summary --workdir=/tmp/x
  python -m inpaint_jax.main --config=configs/lama.py:demo --workdir=runs/demo \
      --config.total_steps=50 --config.data.source=folder --config.data.folder=/photos

The recipe follows the official `lama-fourier.yaml` / `big-lama.yaml` (see the
README, "LaMa"). Deliberate difference: the ResNet-50 perceptual loss (HRFPL,
weight 30) needs the ADE20k segmentation weights from a local file and is not
part of this recipe yet.
"""

import ml_collections
from ml_collections import config_dict

from inpaint_jax.config_lib import parse_arg, term
from inpaint_jax.optim import optim_group

VARIANTS = ("fourier", "big", "demo", "tiny")


def mask_config(kind: str = "lama_mixed") -> ml_collections.ConfigDict:
  """`masks`: a preset plus optional overrides (None = the preset's own value)."""
  unset_int = lambda: config_dict.placeholder(int)
  return ml_collections.ConfigDict(dict(
      kind=kind,
      scale=1.0,  # multiplies the preset's pixel sizes (lengths, widths, margins, boxes)
      irregular_prob=config_dict.placeholder(float),
      box_prob=config_dict.placeholder(float),
      irregular=dict(max_angle=unset_int(), max_len=unset_int(), max_width=unset_int(),
                     min_times=unset_int(), max_times=unset_int()),
      box=dict(margin=unset_int(), bbox_min_size=unset_int(), bbox_max_size=unset_int(),
               min_times=unset_int(), max_times=unset_int())))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="fourier")
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/lama.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)}")

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.seed = 0
  # Global batch over all processes and devices. The paper trains lama-fourier
  # with 3 GPUs x 10 and big-lama with 8 GPUs x 15.
  c.batch_size = 30
  c.total_steps = 1_000_000
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 2_500
  # A model directory (`python -m inpaint_jax.convert`) to start from: its generator and
  # discriminator weights, fresh optimiser states. Ignored when the workdir has a checkpoint.
  c.init_from = ""

  c.data = ml_collections.ConfigDict(dict(
      source="embedded",     # embedded | folder | tfds
      image_size=256,        # random square crops
      # none | flip | distortions. LaMa trains with its `distortions` chain (perspective,
      # affine, lens distortion, crop, flip, CLAHE, brightness/contrast, HSV; see
      # inpaint_jax/data/augment.py). The demo keeps it: at 64 px it costs about 8 ms per
      # example (the warps run on the full photo), 26 ms per 4-example batch against a
      # ~160 ms training step, so the prefetched pipeline stays well ahead.
      augment="distortions",
      folder="",             # for source=folder: any tree of JPEG/PNG
      small_images="error",  # error | skip | resize, for images smaller than the crop
      tfds_name="",          # for source=tfds, e.g. places365_small
      tfds_split="train",
      tfds_data_dir="",
      tfds_image_key="image",
      prefetch=2,            # batches prepared ahead by background threads
  ))
  # LaMa's training masks (abl-04-256-mh-dist): irregular strokes or boxes, 50/50.
  c.masks = mask_config("lama_mixed")

  c.generator = ml_collections.ConfigDict(dict(
      name="ffc_resnet", ngf=64, n_downsampling=3, n_blocks=9, ratio_g=0.75,
      enable_lfu=False))
  c.discriminator = ml_collections.ConfigDict(dict(name="nlayer", ndf=64, n_layers=4))

  # Adam, G 1e-3 / D 1e-4, PyTorch betas, Lightning gradient_clip_val 1 per
  # optimiser, no schedule.
  c.optim = ml_collections.ConfigDict(dict(
      g=optim_group(name="adam", lr=1e-3, grad_clip_norm=1.0),
      d=optim_group(name="adam", lr=1e-4, grad_clip_norm=1.0)))

  c.train = ml_collections.ConfigDict(dict(
      d_every=1,                # D steps on every iteration
      n_critic=1,               # one D update per G update
      critic_batches="fresh",   # fresh | same (only matters for n_critic > 1)
      # LaMa runs the generator forward again for the D step (Lightning calls
      # training_step once per optimiser), so G's BatchNorm statistics advance
      # twice per iteration and D sees the output of the updated generator.
      fresh_fake_for_d=True,
      ema_decay=0.0,            # generator EMA off (LaMa: average_generator False)
  ))
  # Official runs used DDP without SyncBN: BatchNorm statistics over the 10
  # images of one GPU (lama-fourier; 15 for big-lama), whatever the device count.
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=10))
  c.phases = ml_collections.ConfigDict()   # one phase
  c.frozen = ml_collections.ConfigDict()   # no frozen backbones yet (HRFPL pending)

  # Loss recipes: label -> (registered fn, weight, options). Labels name the
  # logged terms; `--config.losses.generator.fm.weight=0` switches a term off.
  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(dict(
      l1=term("masked_l1", 1.0, weight_known=10.0, weight_missing=0.0),
      adv=term("nonsaturating_g", 10.0),
      fm=term("feature_matching", 100.0),
  ))
  c.losses.discriminator = ml_collections.ConfigDict(dict(
      adv=term("nonsaturating_d", 1.0, mask_as_fake_target=True),
      r1=term("r1_penalty", 0.001),
  ))
  c.losses.d_input = "pred"        # D scores the raw prediction, not the composite
  c.losses.d_input_mask = False    # D sees RGB only

  if a.variant == "big":
    c.generator.n_blocks = 18
    c.batch_size = 120
    c.batchnorm.group_size = 15
  elif a.variant in ("demo", "tiny"):
    c.batch_size = 4
    c.total_steps = 500
    c.checkpoint_every_steps = 250
    c.log_every_steps = 25
    c.image_every_steps = 100
    c.data.image_size = 64
    c.masks.scale = 0.25  # the 256-px mask recipe scaled to 64 px
    c.batchnorm.group_size = 0  # the whole (small) batch
    c.generator.ngf = 16
    c.generator.n_blocks = 3
    c.discriminator.ndf = 16
    c.discriminator.n_layers = 3
  if a.variant == "tiny":
    c.total_steps = 4
    c.checkpoint_every_steps = 2
    c.log_every_steps = 1
    c.image_every_steps = 2
    c.data.image_size = 32
    c.masks.scale = 0.125
    c.generator.ngf = 8
    c.generator.n_blocks = 1
    c.discriminator.ndf = 8
    c.discriminator.n_layers = 2
  return c
