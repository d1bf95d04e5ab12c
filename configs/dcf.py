r"""DCF (GitHub menghanyan66/GCFN): dynamic coarse-to-fine inpainting, its nine losses.

Variants (the text after ':', then optional `key=value` arguments):
  official  the official code's defaults (`DCFConfig`): 128 px, hidden 48, widths
            48..384, 3 refinement stages; 6,535,420 generator and 374,353
            discriminator parameters; its bugs kept (default). The importance
            gate is the exact-arithmetic one (`importance_gate=all`: every quarter
            kept, the fusion BN's running statistics updated twice per gated stage, as
            the official second pass does); `--config.generator.importance_gate=
            official` emulates the official float32 gates, which no implementation
            reproduces (float rounding decides them).
  fixed     official with both bug switches on the fixed side: quarter crops in
            feature coordinates (`quarter_crops=fixed`) and images in [-1, 1]
            (`value_range=symmetric`) so the tanh output can reach the targets.
  demo      a small CPU variant for the quick start (64 px, widths 12..48).
  tiny      a very small variant for tests (32 px, 2 refinement stages, D stepped every
            iteration with the generator's outputs, so one program compiles; 4 steps).
Arguments: `vgg19=PATH` (torchvision `vgg19-dcbb9e9d.pth`, a `.npz` or a converted
directory) gives the perceptual and style terms the published weights: the published
variants need it to train; `demo` without it uses a seeded random VGG-19 (`vgg19=random`,
so every term is computed and logged, though not with the published features); `tiny`
leaves both terms out unless given a path. `fixed=True` applies the fixes to any variant
(e.g. `demo,fixed`).

Run:
  python -m inpaint_jax.main --config=configs/dcf.py --mode=summary --workdir=/tmp/s
  python -m inpaint_jax.main --config=configs/dcf.py:official,vgg19=/w/vgg19.pth \
      --workdir=runs/dcf --config.data.source=folder --config.data.folder=/data/train
  python -m inpaint_jax.main --config=configs/dcf.py:demo --workdir=runs/dcf_demo

Recipe, as the official `loss.py` (every term on the composite, in the network's value
space: ImageNet-normalised by default, `space=` on each term; the VGG terms read the
[0, 1] images, which is the official de-normalisation):
  charbonnier         1 x mean sqrt(d^2 + 1e-6)
  pixel_fft           1 x masked L1 (mean |pred m - image m|) ...
  pixel_fft_freq      ... + 0.1 x min(2, L1 of log(1 + |rfft2 ortho|)), 0 if not finite
  perceptual          0.05 x min(3, Σ L1 of per-pixel-normalised VGG-19 relu1_2 / relu2_2 /
                      relu3_3 features)
  style               30 x min(2, Σ L1 of Gram matrices of those features)
  boundary            5 -> 10 (linear over the first 10 epochs, epoch-wise) x min(5, Sobel
                      gradient L1 on the ring dilate7 - erode7, distance-weighted)
  smooth_transition   3 x min(3, Gaussian local mean + 0.5 local variance L1 outside)
  color_consistency   1.5 x min(2, MSE of ring means + MSE of ring stds)
  progressive_{0,1,2} 0.2 x (0.8, 0.5, 0.3) x Charbonnier of the stage outputs, only for
                      the stages the batch ran (`scale_by="stage_active[i]"`)
  adv_g               0.005 x min(2, mean (D(fake) - 1)^2)
The total is clamped at 100 and replaced by Charbonnier + boundary (unweighted) when it is
not finite (`losses.generator_total`). D: 0.5 x [min(2, mean (D(real) - 1)^2) +
min(2, mean D(fake)^2)] on the composite, stepped every 2nd iteration.
AdamW (betas 0.5 / 0.999, weight decay 1e-4), G 2e-4 and D 5e-5, cosine annealing to 1e-6
/ 1e-7 over the run, gradient clipping 0.5 per network, batch 32, 50 epochs of 8,000
images (250 iterations; the official `main.py` overrides this to 256 px, 60 epochs and
10,000 images). Masks: DCF's random-walk strokes (`dcf_random_walk`); augmentation: whole
image resized, flipped and colour-jittered (`resize_flip_jitter`).

Differences from the official loop (ours is the project's trainer): the rates follow the
cosine per iteration, not per epoch; D is stepped after G on iterations 2, 4, ... on a
fresh generator pass (the official loop steps D first on batches 0, 2, ...); stages a batch
does not run get zero gradients (AdamW still decays them and applies its moments, where
PyTorch skips parameters without a gradient); no mixed precision.
"""

import ml_collections
from ml_collections import config_dict

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term, vgg_weights
from inpaint_jax.models.dcf import paper
from inpaint_jax.optim import optim_group

VARIANTS = ("official", "fixed", "demo", "tiny")
TRAIN_IMAGES = 8_000
EPOCHS = 50
PROGRESSIVE = (0.8, 0.5, 0.3)
VGG19_RELU123 = ("relu1_2", "relu2_2", "relu3_3")


def recipe(space: str, iters_per_epoch: int, vgg: bool, stages: int = 3) -> dict:
  """The generator terms (see the module docstring); one progressive term per stage."""
  c = dict(output="composite", space=space)
  terms = dict(
      charbonnier=term("charbonnier", 1.0, eps=1e-3, **c),
      pixel_fft=term("hole_l1", 1.0, **c),
      pixel_fft_freq=term("log_spectrum_l1", 0.1, clamp=2.0, nan_value=0.0, **c),
      boundary=term("boundary_gradient", 5.0, kernel_size=7, clamp=5.0,
                    ramp=dict(to=10.0, over_steps=10 * iters_per_epoch, every=iters_per_epoch),
                    **c),
      smooth_transition=term("smooth_transition", 3.0, kernel_size=11, sigma=2.5, clamp=3.0,
                             **c),
      color_consistency=term("color_consistency", 1.5, kernel_size=7, clamp=2.0, **c),
      adv_g=term("lsgan_g", 0.005, clamp=2.0),
  )
  for i, w in enumerate(PROGRESSIVE[:stages]):
    terms[f"progressive_{i}"] = term("charbonnier", 0.2 * w, eps=1e-3, output=f"stages[{i}]",
                                     space=space, scale_by=f"stage_active[{i}]")
  if vgg:
    v = dict(backbone="vgg19", layers=VGG19_RELU123, normalize_features=True,
             output="composite", nan_value=0.0)
    terms["perceptual"] = term("vgg_perceptual", 0.05, clamp=3.0, **v)
    terms["style"] = term("gram_style", 30.0, clamp=2.0, **v)
  return terms


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="official", vgg19="", fixed=False)
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/dcf.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)}")
  small = a.variant in ("demo", "tiny")
  fixed = a.variant == "fixed" or a.fixed
  value_range = "symmetric" if fixed else "imagenet"

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.seed = 0
  c.batch_size = 32
  iters = TRAIN_IMAGES // c.batch_size
  c.total_steps = EPOCHS * iters
  c.checkpoint_every_steps = 3 * iters   # the official save_interval: 3 epochs
  c.keep_checkpoints = 3
  c.log_every_steps = 20
  c.image_every_steps = 3 * iters

  c.data = config_lib.data_config(image_size=128, augment="resize_flip_jitter")
  c.masks = ml_collections.ConfigDict(dict(kind="dcf_random_walk",
                                           folder=config_dict.placeholder(str)))

  c.generator = ml_collections.ConfigDict(dict(
      name="dcf", input_channels=3, encoder_depths=(48, 96, 192, 384),
      decoder_depths=(384, 192, 96, 48), hidden_dim=48, refinement_stages=3,
      min_scale_size=8, max_scale_size=128, scale_factor=0.5, dropout_rate=0.15,
      smooth_kernel_size=11, smooth_sigma=2.5, boundary_dilation=7,
      quarter_crops="fixed" if fixed else "official", value_range=value_range,
      importance_gate="all", importance_shape="official"))
  c.discriminator = ml_collections.ConfigDict(dict(
      name="dcf_patch", input_channels=3, filters=48, value_range=value_range))

  adamw = dict(name="adamw", b1=0.5, b2=0.999, weight_decay=1e-4, grad_clip_norm=0.5,
               schedule="cosine", decay_steps=c.total_steps)
  c.optim = ml_collections.ConfigDict(dict(g=optim_group(lr=2e-4, min_lr=1e-6, **adamw),
                                           d=optim_group(lr=5e-5, min_lr=1e-7, **adamw)))
  c.train = ml_collections.ConfigDict(dict(
      d_every=2, n_critic=1, critic_batches="fresh", fresh_fake_for_d=True, ema_decay=0.0))
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=0))
  c.phases = ml_collections.ConfigDict()
  c.inference = ml_collections.ConfigDict()

  # The demo computes all nine terms out of the box (config_lib.vgg_weights).
  vgg, vgg_path = vgg_weights(a.variant, a.vgg19)
  c.frozen = ml_collections.ConfigDict()
  if vgg:
    c.frozen.vgg19 = dict(kind="vgg19", path=vgg_path)

  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(recipe(value_range, iters, vgg))
  c.losses.generator_total = ml_collections.ConfigDict(
      dict(clamp=100.0, nan_fallback=("charbonnier", "boundary")))
  c.losses.discriminator = ml_collections.ConfigDict(dict(
      adv=term("lsgan_d", 1.0, clamp_each=2.0)))
  c.losses.d_input = "composite"
  c.losses.d_input_mask = False
  # `--mode=eval` settings (`--config.eval.*`; fields: inpaint_jax.evaluation.runner).
  c.eval = config_lib.eval_config()

  if small:
    set_run_length(c, "demo", total_steps=300, checkpoint_every_steps=150)
    c.generator.encoder_depths = (12, 24, 32, 48)
    c.generator.decoder_depths = (48, 32, 24, 12)
    c.generator.hidden_dim = 12
    c.discriminator.filters = 16
    for net in ("g", "d"):
      c.optim[net].decay_steps = c.total_steps
    c.optim.g.lr = 1e-3
    c.optim.d.lr = 2.5e-4
    ramp_epoch = 30   # a short "epoch" so the boundary ramp shows in a demo run
    c.losses.generator.boundary.ramp = dict(to=10.0, over_steps=10 * ramp_epoch,
                                            every=ramp_epoch)
  if a.variant == "tiny":
    set_run_length(c, "tiny")
    c.generator.encoder_depths = (4, 6, 8, 8)
    c.generator.decoder_depths = (8, 6, 4, 4)
    c.generator.hidden_dim = 4
    c.generator.refinement_stages = 2
    c.discriminator.filters = 4
    for net in ("g", "d"):
      c.optim[net].decay_steps = c.total_steps
    # Compile time dominates the tests: one step program instead of two.
    c.train.d_every = 1
    c.train.fresh_fake_for_d = False
    c.losses.generator = ml_collections.ConfigDict(recipe(value_range, 30, vgg, stages=2))
    c.losses.generator.boundary.ramp = dict(to=10.0, over_steps=300, every=30)
  else:
    config_lib.eval_protocol(c, **paper.README)   # `--mode=eval`: the README's figures
  return c
