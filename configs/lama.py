r"""LaMa (Suvorov et al., WACV 2022) with Fourier convolutions.

Variants (the text after ':'):
  fourier  lama-fourier: 9 FFC residual blocks, 27,048,835 generator params (default).
  big      big-lama: 18 blocks, 50,975,875 params, global batch 120 (8 GPUs x 15).
  demo     a small CPU variant for the quick start (runs in minutes on 2 cores).

Run:
  python -m inpaint_jax.main --config=configs/lama.py --workdir=runs/lama
  python -m inpaint_jax.main --config=configs/lama.py:big --mode=summary --workdir=/tmp/x
  python -m inpaint_jax.main --config=configs/lama.py:demo --workdir=runs/demo \
      --config.total_steps=50 --config.data.source=folder --config.data.folder=/photos

The recipe follows the official `lama-fourier.yaml` / `big-lama.yaml` (see
`shared/research/lama.md` §3-§5). Deliberate difference: the ResNet-50
perceptual loss (HRFPL, weight 30) needs the ADE20k segmentation weights from a
local file and is not part of this recipe yet.
"""

import ml_collections

from inpaint_jax.config_lib import parse_arg, term


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="fourier")
  if a.variant not in ("fourier", "big", "demo"):
    raise ValueError(
        f"configs/lama.py: unknown variant {a.variant!r}; accepted: fourier, big, demo")

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
  # LaMa's training masks (abl-04-256-mh-dist): irregular strokes or boxes,
  # 50/50. Every parameter is spelled out so it can be overridden.
  c.masks = ml_collections.ConfigDict(dict(
      kind="lama_mixed", irregular_prob=0.5, box_prob=0.5,
      irregular=dict(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5),
      box=dict(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=4)))

  c.generator = ml_collections.ConfigDict(dict(
      name="ffc_resnet", ngf=64, n_downsampling=3, n_blocks=9, ratio_g=0.75,
      enable_lfu=False))
  c.discriminator = ml_collections.ConfigDict(dict(name="nlayer", ndf=64, n_layers=4))

  c.optim = ml_collections.ConfigDict(dict(
      g_lr=1e-3, d_lr=1e-4, b1=0.9, b2=0.999, grad_clip_norm=1.0))

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
  # LaMa runs the generator forward again for the D step (Lightning calls
  # training_step once per optimiser), so G's BatchNorm statistics advance twice
  # per iteration and D sees the output of the updated generator.
  c.fresh_fake_for_d = True

  if a.variant == "big":
    c.generator.n_blocks = 18
    c.batch_size = 120
  elif a.variant == "demo":
    c.batch_size = 4
    c.total_steps = 500
    c.checkpoint_every_steps = 250
    c.log_every_steps = 25
    c.image_every_steps = 100
    c.data.image_size = 64
    # The 256-px mask recipe scaled to 64 px (lengths and widths / 4).
    c.masks.irregular.update(max_len=50, max_width=25)
    c.masks.box.update(margin=3, bbox_min_size=8, bbox_max_size=38)
    c.generator.ngf = 16
    c.generator.n_blocks = 3
    c.discriminator.ndf = 16
    c.discriminator.n_layers = 3
  return c
