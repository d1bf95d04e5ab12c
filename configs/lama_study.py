r"""The experiments of a student study of LaMa (MVA deep learning project, 2021-22).

The study re-implemented LaMa in PyTorch and tried two changes on its own baseline; see the
README, "LaMa study (WGAN-GP, spectral convolution, masks)", for what it did and which of
its bugs are (not) reproduced.

Variants (the text after ':'):
  baseline     the study's LaMa: global ratio 0.6, each FFC residual block applies one
               FFC layer twice (shared weights), conv biases; 18,441,277 generator and
               2,766,529 discriminator parameters (PatchGAN, BatchNorm) (default).
  conv_change  baseline with the local-to-global 3x3 conv of every residual block replaced
               by a spectral transform: 14,903,683 generator parameters.
  wgan         baseline trained as a WGAN-GP: critic with InstanceNorm (affine) and no
               bias (2,765,568 parameters), gradient penalty 10 on real/fake interpolates,
               5 critic updates (fresh batches) per generator update, no weight clipping.

Switches, after a variant (`wgan,demo`, `conv_change,lama_losses`):
  demo         a small CPU variant (64 px, 3 blocks, 500 generator steps); the perceptual
               terms need weight files, so they are left out unless `perceptual` is given.
  tiny         a very small variant for tests (32 px, 4 steps), perceptual terms left out.
  perceptual   keep the VGG-19 and HRF perceptual terms in demo / tiny.
  lama_losses  LaMa's own recipe in place of the study's: masked L1 on the known pixels 10,
               feature matching 100, HRFPL 30, and (baseline, conv_change) the
               non-saturating loss 10 with R1 0.001 on the whole logit map; wgan keeps its
               WGAN-GP pair at weight 1.
  d_kappa      reproduce a study bug: the discriminator's adversarial loss is multiplied by
               kappa (10) as well (baseline, conv_change).

The study's recipe (baseline, conv_change): adversarial kappa 10 (non-saturating; the
generator term weighted by the hole mask resized bilinearly to the logit map; the
discriminator labels the known region of the fake as real and adds R1 0.001), HRF
perceptual alpha 30 (ResNet-50-dilated features, MSE summed over its 4 stages), and
beta 100 on a VGG-19 perceptual loss (MSE at each of the 16 ReLUs, averaged over the
layers, summed over the batch; the study calls it "feature matching"). No L1 term, no
output compositing. wgan: G = -mean D(fake) + 30 HRF + 100 VGG.

Run:
  python -m inpaint_jax.main --config=configs/lama_study.py:wgan,demo --workdir=runs/wgan
  python -m inpaint_jax.main --config=configs/lama_study.py:conv_change --mode=summary \
      --workdir=/tmp/x
"""

import ml_collections

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term
from inpaint_jax.optim import optim_group

VARIANTS = ("baseline", "conv_change", "wgan")
SWITCHES = ("demo", "tiny", "perceptual", "lama_losses", "d_kappa")
RESNET_PL_PATH = "weights/ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"
VGG19_PATH = "weights/vgg19-dcbb9e9d.pth"
# All 16 ReLUs of torchvision's `vgg19.features`, which the study's VGG loss reads.
VGG19_ALL_RELUS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2",
                   "relu3_3", "relu3_4", "relu4_1", "relu4_2", "relu4_3", "relu4_4",
                   "relu5_1", "relu5_2", "relu5_3", "relu5_4")
KAPPA, ALPHA, BETA, GAMMA, LAMBDA_GP = 10.0, 30.0, 100.0, 0.001, 10.0
# Places365 "small" images the study trained on, over its batch of 8.
STUDY_IMAGES, STUDY_BATCH, STUDY_EPOCHS = 18_250, 8, 50


def _study_losses(c: ml_collections.ConfigDict, variant: str, d_kappa: bool) -> None:
  g = ml_collections.ConfigDict()
  d = ml_collections.ConfigDict()
  if variant == "wgan":
    g.adv = term("wgan_g", 1.0)
    d.adv = term("wgan_d", 1.0)
    d.gp = term("gradient_penalty", LAMBDA_GP)
  else:
    g.adv = term("nonsaturating_g", KAPPA, region="hole", mask_resize="bilinear")
    d.adv = term("nonsaturating_d", KAPPA if d_kappa else 1.0, mask_as_fake_target=True,
                 mask_resize="bilinear")
    d.r1 = term("r1_penalty", GAMMA)
  # The study feeds [0, 1] images to both backbones without ImageNet normalisation. The
  # VGG-19 term reproduces that (imagenet_normalize=False); `resnet_pl` always
  # ImageNet-normalises (LaMa's HRFPL rule), a difference listed in docs/lama.md.
  g.hrfpl = term("resnet_pl", ALPHA, backbone="resnet_pl", bn_mode="train")
  g.vgg = term("vgg_perceptual", BETA, backbone="vgg19", layers=VGG19_ALL_RELUS,
               distance="mse", layer_reduction="mean", imagenet_normalize=False,
               pooling="max", region="all", batch_reduction="sum")
  c.losses.generator, c.losses.discriminator = g, d
  c.frozen = ml_collections.ConfigDict(dict(
      resnet_pl=dict(kind="ade20k_resnet50", path=RESNET_PL_PATH),
      vgg19=dict(kind="vgg19", path=VGG19_PATH)))


def _lama_losses(c: ml_collections.ConfigDict, variant: str) -> None:
  g = ml_collections.ConfigDict(dict(
      l1=term("masked_l1", 1.0, weight_known=10.0, weight_missing=0.0)))
  d = ml_collections.ConfigDict()
  if variant == "wgan":
    g.adv = term("wgan_g", 1.0)
    d.adv = term("wgan_d", 1.0)
    d.gp = term("gradient_penalty", LAMBDA_GP)
  else:
    g.adv = term("nonsaturating_g", 10.0)
    d.adv = term("nonsaturating_d", 1.0, mask_as_fake_target=True)
    d.r1 = term("r1_penalty", 0.001)
  g.fm = term("feature_matching", 100.0)
  g.hrfpl = term("resnet_pl", 30.0, backbone="resnet_pl", bn_mode="train")
  c.losses.generator, c.losses.discriminator = g, d
  c.frozen = ml_collections.ConfigDict(dict(
      resnet_pl=dict(kind="ade20k_resnet50", path=RESNET_PL_PATH)))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="baseline", **{s: False for s in SWITCHES})
  if a.variant not in VARIANTS:
    raise ValueError(f"configs/lama_study.py: unknown variant {a.variant!r}; accepted: "
                     f"{', '.join(VARIANTS)} (then any of {', '.join(SWITCHES)})")
  if a.demo and a.tiny:
    raise ValueError("configs/lama_study.py: demo and tiny exclude each other")
  wgan = a.variant == "wgan"

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.switches = ",".join(s for s in SWITCHES if a[s])
  c.seed = 0
  c.batch_size = STUDY_BATCH
  # The study's default of 50 epochs; a WGAN iteration reads n_critic batches.
  batches = STUDY_EPOCHS * (STUDY_IMAGES // STUDY_BATCH)
  c.total_steps = batches // 5 if wgan else batches
  c.checkpoint_every_steps = 1_000
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 1_000

  c.data = config_lib.data_config(source="tfds", image_size=256, augment="none",
                                  tfds_name="places365_small")
  # The study's masks: a polygonal chain or 1-3 boxes, 50/50 (`square`: boxes only).
  c.masks = ml_collections.ConfigDict(dict(kind="study_mixed", scale=1.0))

  c.generator = ml_collections.ConfigDict(dict(
      name="ffc_resnet", ngf=64, n_downsampling=3, n_blocks=9, ratio_g=0.6, enable_lfu=False,
      share_block_weights=True, use_bias=True, l2g_spectral=a.variant == "conv_change",
      fft_impl="fft"))  # fft | matmul (see configs/lama.py)
  # PatchGAN 3->64->128->256 (stride 2) ->512 (stride 1) ->1, k4 pad 2.
  c.discriminator = ml_collections.ConfigDict(dict(
      name="nlayer", ndf=64, n_layers=3, norm="instance" if wgan else "batch",
      use_bias=not wgan))

  # Adam 1e-3 for both nets, PyTorch betas, no clipping, no schedule.
  c.optim = ml_collections.ConfigDict(dict(g=optim_group(name="adam", lr=1e-3),
                                           d=optim_group(name="adam", lr=1e-3)))
  c.train = ml_collections.ConfigDict(dict(
      d_every=1,
      n_critic=5 if wgan else 1,
      critic_batches="fresh",  # the study steps the critic on every batch
      # baseline: D learns from the fake made before the G update (one forward per
      # batch); wgan: the critic steps after the G update see its new outputs.
      fresh_fake_for_d=wgan,
      ema_decay=0.0))
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=0))  # one GPU: the whole batch
  c.phases = ml_collections.ConfigDict()

  c.losses = ml_collections.ConfigDict()
  if a.lama_losses:
    _lama_losses(c, a.variant)
  else:
    _study_losses(c, a.variant, a.d_kappa)
  c.losses.d_input = "pred"       # raw prediction, never composited
  c.losses.d_input_mask = False   # D sees RGB only

  c.eval = config_lib.eval_config()
  c.eval.masks = "thick_256"
  c.eval_every_steps = 0  # the study validated nothing during training
  c.best_metric = "ssim"
  c.keep_best = 1

  if a.demo or a.tiny:
    c.data.source = "embedded"
    c.data.augment = "flip"
    set_run_length(c, "demo")
    c.masks.scale = 0.25  # the 256 px shapes at 64 px
    c.generator.ngf = 16
    c.generator.n_blocks = 3
    c.discriminator.ndf = 16
    c.eval.masks = "irregular_20_30"
    c.eval.periodic_n_images = 8
    if not a.perceptual:
      for name in ("hrfpl", "vgg"):
        if name in c.losses.generator:
          del c.losses.generator[name]
      c.frozen = ml_collections.ConfigDict()
  if a.tiny:
    set_run_length(c, "tiny")
    c.masks.scale = 0.125
    c.generator.ngf = 8
    c.generator.n_blocks = 1
    c.discriminator.ndf = 8
    c.discriminator.n_layers = 2
  return c
