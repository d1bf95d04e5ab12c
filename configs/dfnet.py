r"""DFNet (Hong et al., ACM MM 2019): fusion blocks and multi-scale constraints.

Variants (the text after ':', then optional `key=value` arguments):
  places2    the official Places2 model at 512 px: 8 levels, fusion at 6 scales,
             32,880,504 generator parameters, no discriminator (default).
  celeba     the same network trained at 256 px (the official CelebA checkpoint).
  sngan      places2 plus an SN-PatchGAN discriminator (hinge loss) on image + mask.
  coordconv  places2 with CoordConv channels before every encoder/decoder conv.
  demo       a small CPU variant for the quick start (64 px, 6 levels, minutes on 2 cores).
  tiny       a very small variant for tests (32 px, 5 levels, 4 steps).
Arguments: `vgg16=PATH` (torchvision `vgg16-397923af.pth`, a `.npz` or a converted
directory) switches on the VGG-16 perceptual and style terms in demo/tiny (the published
variants always have them and need the path); `tv_on_prediction=True` applies the TV
term to the predictions (see below); `sngan=True` / `coordconv=True` add those options to
any variant (e.g. `demo,sngan`).

Run:
  python -m inpaint_jax.main --config=configs/dfnet.py --mode=summary --workdir=/tmp/s
  python -m inpaint_jax.main --config=configs/dfnet.py:places2,vgg16=/w/vgg16.pth \
      --workdir=runs/dfnet --config.data.source=folder --config.data.folder=/places2
  python -m inpaint_jax.main --config=configs/dfnet.py:demo --workdir=runs/dfnet_demo

Recipe, as the official `loss.py` and `config.yaml` (images in [0, 1], targets are the
image resized bilinearly without anti-aliasing to each scale):
  reconstruction  6 x mean over all fusion scales of the plain L1 (`multiscale_l1`).
  perceptual      0.1 x mean over the 3 finest scales of sum_{pool1..3} mean L1 of VGG-16
                  features (no ImageNet normalisation): one term per scale, weight 0.1/3.
  style           240 x the same with Gram matrices F^T F / (C H W): weight 240/3 per scale.
  tv              0.1 x mean over the 3 finest scales of mean |D(x) * known| with DFNet's
                  kernel [[0, 1, 0], [1, -2, 0], [0, 0, 0]]. The official code passes the
                  *targets* as x, so the term is a constant without gradient; that is the
                  default here (`of="target"`) and `tv_on_prediction=True` fixes it.
Adam lr 2e-4 (PyTorch betas), x0.1 every 5 epochs of 37,500 iterations, batch 6,
20 epochs (750,000 iterations). Masks: DFNet's free-form strokes with 10-20 % holes
(`dfnet_free_form`); `--config.masks.kind=dfnet_folder --config.masks.folder=DIR` uses a
folder of mask files with DFNet's random flip + affine augmentation instead.

Our choices where the official code has none: the SN-PatchGAN option (DeepFill v2's
discriminator; D scores the composite with the mask channel; hinge loss, G weight 0.1,
Adam 2e-4 with the same step decay for D), and training BatchNorm over the whole batch.
"""

import ml_collections
from ml_collections import config_dict

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term
from inpaint_jax.optim import optim_group

VARIANTS = ("places2", "celeba", "sngan", "coordconv", "demo", "tiny")
ITERS_PER_EPOCH = 37_500
TEXTURE_SCALES = (0, 1, 2)  # the official `texture_layers`


def mask_config(kind: str = "dfnet_free_form") -> ml_collections.ConfigDict:
  """`masks`: the kind plus the folder of `dfnet_folder` (None = unset)."""
  return ml_collections.ConfigDict(dict(kind=kind, folder=config_dict.placeholder(str)))


def texture_terms(scales, tv_on_prediction: bool, vgg: bool) -> dict:
  """Per-scale perceptual, style and TV terms; the official means over scales become weights."""
  n = len(scales)
  terms = {}
  for s in scales:
    out = f"scales[{s}]"
    if vgg:
      terms[f"perceptual_s{s}"] = term("vgg_perceptual", 0.1 / n, output=out, backbone="vgg16")
      terms[f"style_s{s}"] = term("gram_style", 240.0 / n, output=out, backbone="vgg16")
    terms[f"tv_s{s}"] = term("total_variation", 0.1 / n, output=out, form="dfnet",
                             region="known", of="pred" if tv_on_prediction else "target")
  return terms


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="places2", vgg16="", tv_on_prediction=False, sngan=False,
                coordconv=False)
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/dfnet.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)}")
  small = a.variant in ("demo", "tiny")

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.seed = 0
  c.batch_size = 6
  c.total_steps = 20 * ITERS_PER_EPOCH
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 2_500

  # The later official training code: random horizontal flip.
  c.data = config_lib.data_config(image_size=512, augment="flip")
  c.masks = mask_config()

  c.generator = ml_collections.ConfigDict(dict(
      name="dfnet", c_img=3, c_mask=1, c_alpha=3, mode="nearest", norm="batch",
      act_en="relu", act_de="leaky_relu", en_ksize=(7, 5, 5, 3, 3, 3, 3, 3),
      de_ksize=(3,) * 8, blend_layers=(0, 1, 2, 3, 4, 5), c_base=64, c_max=512,
      coord_conv=False))
  c.discriminator = ml_collections.ConfigDict(dict(name="none"))

  step_decay = dict(name="adam", lr=2e-4, schedule="step", decay_every=5 * ITERS_PER_EPOCH,
                    decay_factor=0.1)
  c.optim = ml_collections.ConfigDict(dict(g=optim_group(**step_decay)))

  c.train = ml_collections.ConfigDict(dict(
      d_every=1, n_critic=1, critic_batches="fresh", fresh_fake_for_d=False, ema_decay=0.0))
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=0))  # the whole batch of 6
  c.phases = ml_collections.ConfigDict()
  # Colour order the weights expect; the inference adapter flips RGB inputs when `bgr`.
  # Weights we train see RGB; the converter sets `bgr` for the released checkpoints.
  c.inference = ml_collections.ConfigDict(dict(channel_order="rgb"))

  vgg = not small or bool(a.vgg16)
  c.frozen = ml_collections.ConfigDict()
  if vgg:
    # The published recipe needs torchvision's ImageNet VGG-16 (`vgg16=PATH`).
    c.frozen.vgg16 = dict(kind="vgg16", path=a.vgg16)

  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(dict(
      reconstruction=term("multiscale_l1", 6.0),
      **texture_terms(TEXTURE_SCALES, a.tv_on_prediction, vgg)))
  c.losses.discriminator = ml_collections.ConfigDict()
  c.losses.d_input = "composite"
  c.losses.d_input_mask = False
  # `--mode=eval` settings (`--config.eval.*`; fields: inpaint_jax.evaluation.runner).
  c.eval = config_lib.eval_config()

  if a.variant == "celeba":
    c.data.image_size = 256
  if a.variant == "coordconv" or a.coordconv:
    c.generator.coord_conv = True

  if small:
    set_run_length(c, "demo", total_steps=300, checkpoint_every_steps=150)
    c.generator.en_ksize = (7, 5, 5, 3, 3, 3)
    c.generator.de_ksize = (3,) * 6
    c.generator.blend_layers = (0, 1, 2, 3)
    c.generator.c_base = 16
    c.generator.c_max = 128
    c.optim.g.lr = 1e-3
    c.optim.g.decay_every = 200
  if a.variant == "tiny":
    set_run_length(c, "tiny")
    c.generator.en_ksize = (7, 5, 5, 3, 3)
    c.generator.de_ksize = (3,) * 5
    c.generator.blend_layers = (0, 1, 2)
    c.generator.c_base = 4
    c.generator.c_max = 16
    c.optim.g.decay_every = 2

  if a.variant == "sngan" or a.sngan:
    ndf = 64 if not small else (16 if a.variant == "demo" else 4)
    # At 64 / 32 px, 4 / 3 stride-2 layers keep a 4 x 4 grid of patch scores (six would
    # leave one score per image, a global discriminator, which learns far more slowly).
    n_layers = {"demo": 4, "tiny": 3}.get(a.variant, 6)
    c.discriminator = ml_collections.ConfigDict(dict(name="sn_patchgan", input_nc=4, ndf=ndf,
                                                     n_layers=n_layers))
    c.optim.d = optim_group(**{**step_decay, "lr": c.optim.g.lr,
                               "decay_every": c.optim.g.decay_every})
    c.losses.generator.adv = term("hinge_g", 0.1)
    c.losses.discriminator.adv = term("hinge_d", 1.0)
    c.losses.d_input_mask = True
  return c
