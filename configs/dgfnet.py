r"""DGFNet (Yang and Shi): RFR-Net coarse branch, RTV texture branch, DPFM fusion.

Variants (the text after ':', then optional `key=value` arguments):
  full        the full model (default): coarse branch RFR-Net, texture branch on the
              RTV texture map of the masked image, a feature encoder per stream, four
              DPFMs, SN-PatchGAN (hinge).
  no_dpfm     the "without DPFM" ablation: the two streams are concatenated, no gate.
  no_texture  the baseline: no RTV, no texture branch, no DPFM (coarse stream only).
  demo        the full model, small, for a few CPU minutes (64 px).
  tiny        a very small variant for tests (32 px, 4 steps).
Arguments: `no_dpfm` / `no_texture` combine with demo and tiny (`demo,no_texture`);
`vgg16=PATH` (torchvision `vgg16-397923af.pth`, a `.npz` or a converted directory)
gives the VGG-16 perceptual and style terms their published weights (the published
variants need it to train; `demo` without it runs them on a seeded random VGG-16,
`vgg16=random`, so every term is logged; `tiny` leaves them out).
So the paper's Table 2 ablation is three runs:
`configs/dgfnet.py:no_texture`, `:no_dpfm` and `:full`.

Run:
  python -m inpaint_jax.main --config=configs/dgfnet.py --mode=summary --workdir=/tmp/s
  python -m inpaint_jax.main --config=configs/dgfnet.py:full,vgg16=/w/vgg16.pth \
      --workdir=runs/dgfnet --config.data.source=folder --config.data.folder=/data/train
  python -m inpaint_jax.main --config=configs/dgfnet.py:demo --workdir=runs/dgfnet_demo

Recipe: the paper's per-branch weights, each term on its branch's output (`output=`):
  coarse   hole 6, valid 1, perceptual 0.1, style 180 on `coarse` vs the image
  texture  hole 50, valid 50, perceptual 0.1, style 180 on `texture` vs
           `texture_target` = image - RTV(image) (`target=`)
  fusion   hole 50, valid 50, perceptual 0.1, style 180 on `pred` vs the image, and
           the hinge adversarial loss 0.1 in the paper's Eq. (9) form
           mean relu(1 - D(composite)) (`hinge_g`, `form="relu"`; SN-PatchGAN on the
           composite + mask). `--config.losses.generator.adv.form=mean` gives the
           SN-PatchGAN / DeepFill v2 form -mean D(composite) instead.
hole / valid = mean over all elements of |x - y| * mask (resp. * (1 - mask)), perceptual =
sum over VGG-16 pool1..3 of the mean L1, style = the same on Gram matrices / (C H W).
Adam 5e-4, then 5e-5 with every BatchNorm frozen (RFR-Net's fine-tuning), batch 6, 256 px.
`--config.generator.feature_encoders=False` drops the stream encoders (DPFM-1 then reads
the 3-channel composites). Our choices where the paper is silent are listed in
docs/dgfnet.md.
"""

import ml_collections

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term, vgg_weights
from inpaint_jax.models.dgfnet import paper
from inpaint_jax.optim import optim_group

VARIANTS = ("full", "no_dpfm", "no_texture", "demo", "tiny")
TOTAL_STEPS = 600_000      # our choice: RFR-Net's Paris StreetView calendar (400 k + 200 k)
FINETUNE_STEP = 400_000
LR, FINETUNE_LR = 5e-4, 5e-5


def branch_terms(prefix: str, output: str, hole: float, valid: float, vgg: bool,
                 target: str | None = None) -> dict:
  """hole / valid L1 and VGG-16 perceptual / style terms of one branch."""
  extra = {"output": output} if output != "pred" else {}
  if target:
    extra["target"] = target
  terms = {f"{prefix}hole": term("hole_l1", hole, **extra),
           f"{prefix}valid": term("valid_l1", valid, **extra)}
  if vgg:
    terms[f"{prefix}perceptual"] = term("vgg_perceptual", 0.1, backbone="vgg16", **extra)
    terms[f"{prefix}style"] = term("gram_style", 180.0, backbone="vgg16", **extra)
  return terms


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="full", no_dpfm=False, no_texture=False, vgg16="")
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/dgfnet.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)}")
  if a.variant in ("no_dpfm", "no_texture"):
    a[a.variant] = True
  small = a.variant in ("demo", "tiny")

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.seed = 0
  c.batch_size = 6
  c.total_steps = TOTAL_STEPS
  c.checkpoint_every_steps = 40_000  # RFR-Net's interval
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 2_500

  c.data = config_lib.data_config(image_size=256, augment="flip")
  # Free-form strokes (LaMa's irregular generator); `scale` scales its pixel sizes.
  c.masks = ml_collections.ConfigDict(dict(kind="lama_irregular", scale=1.0))

  c.generator = ml_collections.ConfigDict(dict(
      name="dgfnet",
      coarse=dict(name="rfr", rec_ksize=7, n_rec=6),
      texture_branch=not a.no_texture,
      fusion="concat" if a.no_dpfm else "dpfm",
      feature_encoders=True, encoder_widths=(32, 32),
      tex_widths=(64, 128, 256, 512), tex_res_blocks=1,
      fuse_widths=(64, 128, 256, 256), fuse_out_width=32,
      rtv_lam=0.01, rtv_sigma=3.0, rtv_sharpness=0.02, rtv_iters=4,
      rtv_cg_tol=1e-3, rtv_cg_max_iter=300))
  c.discriminator = ml_collections.ConfigDict(dict(name="sn_patchgan", input_nc=4, ndf=64,
                                                   n_layers=6))
  c.optim = ml_collections.ConfigDict(dict(
      g=optim_group(name="adam", lr=LR),
      d=optim_group(name="adam", lr=LR, b1=0.5, b2=0.999)))
  c.train = ml_collections.ConfigDict(dict(
      d_every=1, n_critic=1, critic_batches="fresh", fresh_fake_for_d=False, ema_decay=0.0))
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=0))
  c.phases = ml_collections.ConfigDict()
  c.phases.finetune = dict(start_step=FINETUNE_STEP, freeze_bn=True,
                           lr=dict(g=FINETUNE_LR, d=FINETUNE_LR))

  vgg, vgg_path = vgg_weights(a.variant, a.vgg16)
  c.frozen = ml_collections.ConfigDict()
  if vgg:
    c.frozen.vgg16 = dict(kind="vgg16", path=vgg_path)
  g = branch_terms("coarse_", "coarse", 6.0, 1.0, vgg)
  if not a.no_texture:
    g.update(branch_terms("texture_", "texture", 50.0, 50.0, vgg, target="texture_target"))
  g.update(branch_terms("", "pred", 50.0, 50.0, vgg))
  g["adv"] = term("hinge_g", 0.1, form="relu")   # Eq. (9)
  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(g)
  c.losses.discriminator = ml_collections.ConfigDict(dict(adv=term("hinge_d", 1.0)))
  c.losses.d_input = "composite"
  c.losses.d_input_mask = True
  # `--mode=eval` settings (`--config.eval.*`; fields: inpaint_jax.evaluation.runner).
  c.eval = config_lib.eval_config()

  if small:
    set_run_length(c, "demo", total_steps=300, checkpoint_every_steps=150)
    c.masks.scale = 0.25
    c.generator.coarse = dict(name="rfr", rec_ksize=7, n_rec=2, ngf=16, tail_ch=16,
                              layer_size=4)
    c.generator.tex_widths = (16, 32, 64, 128)
    c.generator.fuse_widths = (16, 32, 64, 64)
    c.generator.fuse_out_width = 16
    c.generator.encoder_widths = (16, 16)
    # Four stride-2 layers keep a 4 x 4 grid of patch scores at 64 px.
    c.discriminator.ndf = 16
    c.discriminator.n_layers = 4
    c.optim.g.lr = c.optim.d.lr = 1e-3
    c.phases.finetune.start_step = 200
  if a.variant == "tiny":
    set_run_length(c, "tiny")
    c.masks.scale = 0.125
    c.generator.coarse = dict(name="rfr", rec_ksize=3, n_rec=1, ngf=4, tail_ch=4,
                              layer_size=4)
    c.generator.tex_widths = (4, 8, 8, 8)
    c.generator.fuse_widths = (4, 8, 8, 8)
    c.generator.fuse_out_width = 4
    c.generator.encoder_widths = (4, 4)
    c.discriminator.ndf = 4
    c.discriminator.n_layers = 3
    c.phases.finetune.start_step = 3  # the last iteration runs the frozen-BN phase
  else:
    config_lib.eval_protocol(c, **paper.TABLE_1)   # `--mode=eval`: the paper's Table 1
  return c
