r"""LaMa (Suvorov et al., WACV 2022) with Fourier convolutions.

Variants (the text after ':'):
  fourier  lama-fourier: 9 FFC residual blocks, 27,048,835 generator params (default).
  big      big-lama: 18 blocks, 50,975,875 params, global batch 120 (8 GPUs x 15).
  demo     a small CPU variant for the quick start (runs in minutes on 2 cores).
  tiny     a very small variant for tests (32 px, 4 steps).

Loss variants, alone (on fourier) or after a variant (`demo,hinge`, `big,vgg_pl,ffl`):
  hinge    hinge GAN losses (SN-PatchGAN) in place of the non-saturating ones.
  vgg_pl   LaMa's VGG-19 perceptual loss (its `ablv2_work_no_segmpl_vgg` ablation, weight
           0.03) in place of HRFPL; needs the torchvision VGG-19 weights.
  ffl      the focal frequency loss (Jiang et al. 2021) added at weight 1.
  hrfpl    HRFPL on in demo / tiny (on by default in fourier and big).

Run:
  python -m inpaint_jax.main --config=configs/lama.py --workdir=runs/lama
  python -m inpaint_jax.main --config=configs/lama.py:big --mode=summary --workdir=/tmp/x
  python -m inpaint_jax.main --config=configs/lama.py:demo --workdir=runs/demo \
      --config.total_steps=50 --config.data.source=folder --config.data.folder=/photos

The recipe follows the official `lama-fourier.yaml` / `big-lama.yaml` (see the
README, "LaMa"), including the high-receptive-field perceptual loss (HRFPL,
weight 30). HRFPL reads the frozen ADE20k ResNet-50-dilated segmentation encoder
from a local file, `--config.frozen.resnet_pl.path` (default below; nothing is
downloaded): `ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth` from
http://sceneparsing.csail.mit.edu/model/pytorch/, or a directory made from it by
`python -m inpaint_jax.convert ade20k_resnet50`. `demo` and `tiny` keep HRFPL off
(they run without any weights file); `--mode=summary` never reads weights. In its place
`demo` puts an L1 term on the hole (weight 30), the one change to LaMa's recipe there.
"""

import ml_collections
from ml_collections import config_dict

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term
from inpaint_jax.losses.perceptual import LAMA_VGG19
from inpaint_jax.models.lama import paper
from inpaint_jax.optim import optim_group

VARIANTS = ("fourier", "big", "demo", "tiny")
LOSS_VARIANTS = ("hinge", "vgg_pl", "ffl", "hrfpl")
# Where LaMa keeps the weights ($TORCH_HOME/...), relative to the working directory.
RESNET_PL_PATH = "weights/ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"
VGG19_PATH = "weights/vgg19-dcbb9e9d.pth"
# The demo's L1 weight on hole pixels, a stand-in for HRFPL (see `get_config`).
DEMO_HOLE_L1_WEIGHT = 30.0


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
  a = parse_arg(arg, variant="fourier", **{v: False for v in LOSS_VARIANTS})
  if a.variant in LOSS_VARIANTS:  # `lama.py:hinge` = `lama.py:fourier,hinge`
    a[a.variant] = True
    a.variant = "fourier"
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/lama.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)} "
        f"(then any of {', '.join(LOSS_VARIANTS)})")

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.loss_variants = ",".join(v for v in LOSS_VARIANTS if a[v])
  c.seed = 0
  # Global batch over all processes and devices. The paper trains lama-fourier
  # with 3 GPUs x 10 and big-lama with 8 GPUs x 15.
  c.batch_size = 30
  c.total_steps = 1_000_000
  # Computation dtype of the networks: float32 | bfloat16. With bfloat16, convolutions and
  # activations run in bfloat16 while parameters, optimiser state, BatchNorm statistics,
  # FFTs and losses stay float32 (mixed precision for accelerators).
  c.dtype = "float32"
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 2_500
  # A model directory (`python -m inpaint_jax.convert`) to start from: its generator and
  # discriminator weights, fresh optimiser states. Ignored when the workdir has a checkpoint.
  c.init_from = ""

  # LaMa trains with its `distortions` chain (perspective, affine, lens distortion, crop,
  # flip, CLAHE, brightness/contrast, HSV; see inpaint_jax/data/augment.py). The demo keeps
  # it: at 64 px it costs about 8 ms per example (the warps run on the full photo), 26 ms
  # per 4-example batch against a ~160 ms training step, so the prefetched pipeline stays
  # well ahead.
  c.data = config_lib.data_config(image_size=256, augment="distortions")
  # LaMa's training masks (abl-04-256-mh-dist): irregular strokes or boxes, 50/50.
  c.masks = mask_config("lama_mixed")

  # fft_impl: the Fourier units' transforms, fft (jnp.fft) | matmul (real DFT matrices at the
  # feature size; same weights, same output to float32 noise; the ONNX export switches to it).
  c.generator = ml_collections.ConfigDict(dict(
      name="ffc_resnet", ngf=64, n_downsampling=3, n_blocks=9, ratio_g=0.75,
      enable_lfu=False, fft_impl="fft"))
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
  # Frozen backbones the losses read (weights from local files, see the module doc).
  c.frozen = ml_collections.ConfigDict(dict(
      resnet_pl=dict(kind="ade20k_resnet50", path=RESNET_PL_PATH)))

  # Loss recipes: label -> (registered fn, weight, options). Labels name the
  # logged terms; `--config.losses.generator.fm.weight=0` switches a term off.
  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(dict(
      l1=term("masked_l1", 1.0, weight_known=10.0, weight_missing=0.0),
      adv=term("nonsaturating_g", 10.0),
      fm=term("feature_matching", 100.0),
      # HRFPL: sum over the encoder's 4 stages of the feature MSE; BatchNorm in train mode,
      # as in the official run (Lightning puts the frozen encoder back in train mode).
      hrfpl=term("resnet_pl", 30.0, backbone="resnet_pl", bn_mode="train"),
  ))
  c.losses.discriminator = ml_collections.ConfigDict(dict(
      adv=term("nonsaturating_d", 1.0, mask_as_fake_target=True),
      r1=term("r1_penalty", 0.001),
  ))
  c.losses.d_input = "pred"        # D scores the raw prediction, not the composite
  c.losses.d_input_mask = False    # D sees RGB only

  # Validation during training: LaMa scores a fixed validation set once per
  # epoch of 25,000 batches and keeps checkpoints by ssim_fid100_f1, which needs
  # FID (converted InceptionV3 weights in eval.inception_weights).
  c.eval = config_lib.eval_config()
  c.eval.masks = "thick_256"
  c.eval_every_steps = 25_000
  c.best_metric = "ssim_fid100_f1"
  c.keep_best = 3

  if a.variant == "big":
    c.generator.n_blocks = 18
    c.batch_size = 120
    c.batchnorm.group_size = 15
  elif a.variant in ("demo", "tiny"):
    # 4000 steps (about 17 minutes on 2 CPU cores): measured on the held-out photos, the
    # demo's fills pass a mean-colour fill on L1 and SSIM after ~2000 steps and on PSNR
    # only after ~3000 (docs/learning.md).
    set_run_length(c, "demo", total_steps=4000, checkpoint_every_steps=500)
    c.masks.scale = 0.25  # the 256-px mask recipe scaled to 64 px
    c.batchnorm.group_size = 0  # the whole (small) batch
    c.generator.ngf = 16
    c.generator.n_blocks = 3
    c.discriminator.ndf = 16
    c.discriminator.n_layers = 3
    # 8 fixed 64 px validation images with 20-30 % irregular holes; no FID
    # weights here, so the best checkpoint is chosen by SSIM.
    c.eval.masks = "irregular_20_30"
    c.eval.periodic_n_images = 8
    c.eval_every_steps = 500
    c.best_metric = "ssim"
    c.keep_best = 1
    # HRFPL off unless asked for (`demo,hrfpl`): it needs the ADE20k encoder weights (a
    # download) and two ResNet-50 passes per step, slow for a CPU demo.
    if not a.hrfpl:
      del c.losses.generator["hrfpl"]
      del c.frozen["resnet_pl"]
      if a.variant == "demo":
        # A stand-in for HRFPL's signal in the hole, where LaMa's L1 has weight 0: without
        # it the hole learns from the adversarial and feature-matching terms alone, and
        # the demo's fills stay below a mean-colour fill. Hole pixels weigh 3x known ones
        # (30 vs 10): with holes of 25-35 % of the crop, both parts get about the same
        # share of the L1 term. (`demo,hrfpl` keeps LaMa's weight 0.)
        c.losses.generator.l1.weight_missing = DEMO_HOLE_L1_WEIGHT
  if a.variant == "tiny":
    set_run_length(c, "tiny")
    c.masks.scale = 0.125
    c.generator.ngf = 8
    c.generator.n_blocks = 1
    c.discriminator.ndf = 8
    c.discriminator.n_layers = 2
    c.eval_every_steps = 0  # tests switch it on where they need it

  g, d = c.losses.generator, c.losses.discriminator
  if a.hinge:
    # Hinge GAN (SN-PatchGAN, DeepFill v2). LaMa's R1 penalty on real images stays (set
    # --config.losses.discriminator.r1.weight=0 for the plain hinge); the mask-as-fake
    # target of LaMa's D loss has no hinge counterpart.
    del g["adv"]
    del d["adv"]
    g.adv_hinge = term("hinge_g", 10.0)
    d.adv_hinge = term("hinge_d", 1.0)
  if a.vgg_pl:
    # LaMa's `PerceptualLoss` as its VGG ablation trains it: VGG-19 with average pooling,
    # the 13 ReLUs up to relu5_1, ImageNet normalisation, MSE on the known pixels (LaMa
    # passes the mask), per-image means summed over layers and over the batch, weight 0.03.
    if "hrfpl" in g:
      del g["hrfpl"]
    if "resnet_pl" in c.frozen:
      del c.frozen["resnet_pl"]
    c.frozen.vgg19 = dict(kind="vgg19", path=VGG19_PATH)
    g.vgg_pl = term("vgg_perceptual", 0.03, backbone="vgg19", layers=LAMA_VGG19,
                    distance="mse", imagenet_normalize=True, pooling="avg", region="known",
                    batch_reduction="sum")
  if a.ffl:
    g.ffl = term("focal_frequency", 1.0, alpha=1.0)
  if a.variant != "tiny":
    # `--mode=eval`: Table 1's protocol, printed beside the paper's figures; the demo's
    # table starts with the set it validates on, at its own 64 px.
    table = paper.BIG if a.variant == "big" else paper.TABLE_1
    if a.variant == "demo":
      table = dict(table, rows=(paper.DEMO_ROW, *table["rows"]))
    config_lib.eval_protocol(c, **table)
  return c
