r"""DPNet (Wang et al., TCSVT 2022): PyConv encoder, pyramidal attention, dynamic normalization.

The authors released no code; the paper fixes the ideas, we chose the rest (README, "DPNet").

Variants (the text after ':', then optional `key=value` arguments):
  default  256 px, 7 encoder levels (64-128-256-512-512-512-512), PAM at H/8 and H/4,
           SN-patch discriminator: 24,867,059 generator and 2,765,761 discriminator
           parameters.
  demo     a small CPU variant (64 px, 5 levels 32-64-128-128-128, D widths 16-32-64-128;
           a few CPU minutes).
  tiny     a very small variant for tests (32 px, 4 levels).
Ablation arguments (each idea switched off on its own, any variant):
  pyconv=False        one 3x3 conv per encoder level 1.. instead of the PyConv pyramids
                      (level 0 keeps its 7x7 stem)
  pam=False           no pyramidal attention in the decoder
  dynamic_norm=False  normalise with `static_norm` (region: region norm driven by the
                      input mask resized to each level; batch: BatchNorm) instead of the
                      encoder's updated masks
Other arguments: `vgg16=PATH` (torchvision `vgg16-397923af.pth`, a `.npz` or a converted
directory) gives the perceptual and style terms their published weights (the default
variant needs it to train; `demo` without it runs them on a seeded random VGG-16,
`vgg16=random`, so every term is logged; `tiny` leaves them out);
`gan=False` drops the discriminator.

Run:
  python -m inpaint_jax.main --config=configs/dpnet.py --mode=summary --workdir=/tmp/s
  python -m inpaint_jax.main --config=configs/dpnet.py:default,vgg16=/w/vgg16.pth \
      --workdir=runs/dpnet --config.data.source=folder --config.data.folder=/places2
  python -m inpaint_jax.main --config=configs/dpnet.py:demo --workdir=runs/dpnet_demo
  python -m inpaint_jax.main --config=configs/dpnet.py:demo,pam=False --workdir=runs/no_pam

Recipe (our choice, PConv / RFR-Net style, since the paper's weights are not public):
  hole 6 x hole L1, valid 1 x valid L1 (means over all elements);
  perceptual 0.05 x VGG-16 pool1-3 L1 on the prediction and again on the composite;
  style 120 x Gram L1 on the same layers, prediction and composite;
  tv 0.1 x total variation of the composite inside the hole;
  adv 0.1 x BCE (fake labelled real) on the composite + mask; D: BCE real / fake.
Adam 2e-4, betas (0.5, 0.999), for G and D; batch 8; masks: LaMa's irregular strokes and
boxes 50/50 (`lama_mixed`, scaled to the image size in demo / tiny).
"""

import ml_collections

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term, vgg_weights
from inpaint_jax.optim import optim_group

VARIANTS = ("default", "demo", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="default", pyconv=True, pam=True, dynamic_norm=True,
                static_norm="region", vgg16="", gan=True)
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/dpnet.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)}")
  small = a.variant in ("demo", "tiny")

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.seed = 0
  c.batch_size = 8
  c.total_steps = 500_000
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 2_500

  c.data = config_lib.data_config(image_size=256, augment="flip")
  c.masks = ml_collections.ConfigDict(dict(kind="lama_mixed", scale=1.0))

  c.generator = ml_collections.ConfigDict(dict(
      name="dpnet", widths=(64, 128, 256, 512, 512, 512, 512), stem_kernel=7,
      pyconv=a.pyconv, pam=a.pam, dynamic_norm=a.dynamic_norm, static_norm=a.static_norm,
      pam_levels=(2, 1), pam_keys="decoder", softmax_scale=10.0, fuse=True))
  c.discriminator = ml_collections.ConfigDict(dict(
      name="dpnet_patch", input_nc=4, widths=(64, 128, 256, 512), kernel_size=4))

  adam = dict(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.optim = ml_collections.ConfigDict(dict(g=optim_group(**adam), d=optim_group(**adam)))
  c.train = ml_collections.ConfigDict(dict(
      d_every=1, n_critic=1, critic_batches="fresh", fresh_fake_for_d=False, ema_decay=0.0))
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=0))  # only static_norm=batch

  vgg, vgg_path = vgg_weights(a.variant, a.vgg16)
  c.frozen = ml_collections.ConfigDict()
  if vgg:
    c.frozen.vgg16 = dict(kind="vgg16", path=vgg_path)

  g = dict(hole=term("hole_l1", 6.0), valid=term("valid_l1", 1.0),
           tv=term("total_variation", 0.1, output="composite", form="rfr", region="hole"))
  if vgg:
    for out in ("pred", "composite"):
      suffix = "" if out == "pred" else "_comp"
      g[f"perceptual{suffix}"] = term("vgg_perceptual", 0.05, output=out, backbone="vgg16")
      g[f"style{suffix}"] = term("gram_style", 120.0, output=out, backbone="vgg16")
  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(g)
  c.losses.discriminator = ml_collections.ConfigDict()
  c.losses.d_input = "composite"
  c.losses.d_input_mask = True
  if a.gan:
    c.losses.generator.adv = term("bce_g", 0.1)
    c.losses.discriminator.adv = term("bce_d", 1.0)
  else:
    c.discriminator = ml_collections.ConfigDict(dict(name="none"))
    del c.optim["d"]

  # `--mode=eval`: PSNR / SSIM / L1 of the composite on fixed mask sets (LPIPS and FID
  # need converted weight files, see "Evaluation").
  c.eval = config_lib.eval_config()
  c.eval.masks = "thick_256"
  c.eval.metrics = "psnr,ssim,l1"
  c.eval_every_steps = 0

  if small:
    c.eval.masks = "irregular_20_30"
    set_run_length(c, "demo", total_steps=300, checkpoint_every_steps=150)
    c.masks.scale = 0.25  # the 256-px mask recipe scaled to 64 px
    c.generator.widths = (32, 64, 128, 128, 128)
    c.optim.g.lr = 1e-3
    if a.gan:
      c.discriminator.widths = (16, 32, 64, 128)
      c.optim.d.lr = 1e-3
  if a.variant == "tiny":
    set_run_length(c, "tiny")
    c.masks.scale = 0.125
    # PyConv groups need 16 | C_in at level 1, and 16 | C_out / 4.
    c.generator.widths = (16, 64, 64, 64)
    if a.gan:
      c.discriminator.widths = (8, 8, 8, 8)
  return c
