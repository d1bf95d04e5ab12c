r"""RFR-Net (Li et al., CVPR 2020): recurrent feature reasoning with partial convolutions.

Variants (the text after ':', then optional `key=value` arguments):
  paris        the published network (rec_ksize 7, 6 recurrences) at 256 px with the
               Paris StreetView schedule: 31,224,065 generator parameters, no
               discriminator (default).
  small_holes  the official "smaller hole" network (rec_ksize 5): 30,929,153 parameters.
  demo         a narrow CPU variant for the quick start (64 px, ngf 16, minutes on 2 cores).
  tiny         a very narrow variant for tests (32 px, ngf 4, 2 recurrences, 4 steps).
Arguments: `vgg16=PATH` (torchvision `vgg16-397923af.pth`, a `.npz` or a converted
directory) gives the VGG-16 perceptual and style terms their published weights (the
published variants need it to train; `demo` without it runs them on a seeded random VGG-16,
`vgg16=random`, so every term is logged; `tiny` leaves them out);
`iters=MAIN+FINETUNE` (e.g. `350000+150000`
for CelebA, `2000000+1000000` for Places2) sets the two phases' lengths.

Run:
  python -m inpaint_jax.main --config=configs/rfr.py --mode=summary --workdir=/tmp/s
  python -m inpaint_jax.main --config=configs/rfr.py:paris,vgg16=/w/vgg16.pth \
      --workdir=runs/rfr --config.data.source=folder --config.data.folder=/paris
  python -m inpaint_jax.main --config=configs/rfr.py:demo --workdir=runs/rfr_demo

Recipe, as the official `model.py` (images in [0, 1], comp = the composite, VGG-16
pool1..3 features without ImageNet normalisation, every mean over all elements):
  hole 6 x mean |out - gt| * hole,  valid 1 x mean |out - gt| * known,
  perceptual 0.05 x (on out) + 0.05 x (on comp), style 120 x (on out) + 120 x (on comp)
  (Gram F^T F / (C H W), L1), tv 0.1 x TV(comp * hole).
Training: Adam lr 2e-4 (PyTorch betas), batch 6; then the fine-tuning phase (the official
`--finetune`): lr 5e-5 with every BatchNorm frozen (running statistics, affine parameters
still trained). Paris StreetView: 400,000 + 200,000 iterations.

Our choices where the official code differs or is silent: the masks are LaMa's free-form
strokes (`lama_irregular`, 20-80 % holes at 256 px; demo/tiny use DFNet's strokes, which
scale with the image; the official run reads a folder of mask files or draws its own
strokes; `--config.masks.kind=...` picks any registered generator); augmentation is a random
horizontal flip of the image (the official code also flips the mask independently and
takes random square crops); the two phases run in one job rather than two.
"""

import ml_collections

from inpaint_jax import config_lib
from inpaint_jax.config_lib import parse_arg, set_run_length, term, vgg_weights
from inpaint_jax.models.dgfnet import paper
from inpaint_jax.optim import optim_group

VARIANTS = ("paris", "small_holes", "demo", "tiny")


def _parse_iters(text: str) -> tuple[int, int]:
  try:
    main, fine = (int(v) for v in text.split("+"))
  except ValueError:
    raise ValueError(f"configs/rfr.py: iters={text!r} is not MAIN+FINETUNE (two positive "
                     f"integers, e.g. 400000+200000)") from None
  if main <= 0 or fine < 0:
    raise ValueError(f"configs/rfr.py: iters={text!r}: MAIN must be > 0 and FINETUNE >= 0")
  return main, fine


def rfr_terms(vgg: bool) -> dict:
  """The official RFR-Net generator loss as recipe terms."""
  terms = dict(hole=term("hole_l1", 6.0), valid=term("valid_l1", 1.0))
  if vgg:
    for out in ("pred", "composite"):
      suffix = "out" if out == "pred" else "comp"
      terms[f"perceptual_{suffix}"] = term("vgg_perceptual", 0.05, output=out,
                                           backbone="vgg16")
      terms[f"style_{suffix}"] = term("gram_style", 120.0, output=out, backbone="vgg16")
  terms["tv"] = term("total_variation", 0.1, output="composite", form="rfr", region="hole")
  return terms


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, variant="paris", vgg16="", iters="")
  if a.variant not in VARIANTS:
    raise ValueError(
        f"configs/rfr.py: unknown variant {a.variant!r}; accepted: {', '.join(VARIANTS)}")
  small = a.variant in ("demo", "tiny")
  main_iters, fine_iters = _parse_iters(a.iters) if a.iters else (400_000, 200_000)

  c = ml_collections.ConfigDict()
  c.variant = a.variant
  c.seed = 0
  c.batch_size = 6
  c.total_steps = main_iters + fine_iters
  c.checkpoint_every_steps = 40_000   # the official `save_ckpt` interval
  c.keep_checkpoints = 3
  c.log_every_steps = 100
  c.image_every_steps = 5_000

  c.data = config_lib.data_config(image_size=256, augment="flip")
  c.masks = ml_collections.ConfigDict(dict(kind="lama_irregular"))

  c.generator = ml_collections.ConfigDict(dict(
      name="rfr", ngf=64, rec_ksize=7, n_rec=6, tail_ch=32, layer_size=6))
  c.discriminator = ml_collections.ConfigDict(dict(name="none"))
  c.optim = ml_collections.ConfigDict(dict(g=optim_group(name="adam", lr=2e-4)))
  c.train = ml_collections.ConfigDict(dict(
      d_every=1, n_critic=1, critic_batches="fresh", fresh_fake_for_d=False, ema_decay=0.0))
  c.batchnorm = ml_collections.ConfigDict(dict(group_size=0))  # the whole batch of 6
  c.phases = ml_collections.ConfigDict()
  if fine_iters:
    c.phases.finetune = dict(start_step=main_iters, freeze_bn=True, lr={"g": 5e-5})

  vgg, vgg_path = vgg_weights(a.variant, a.vgg16)
  c.frozen = ml_collections.ConfigDict()
  if vgg:
    c.frozen.vgg16 = dict(kind="vgg16", path=vgg_path)
  c.losses = ml_collections.ConfigDict()
  c.losses.generator = ml_collections.ConfigDict(rfr_terms(vgg))
  c.losses.discriminator = ml_collections.ConfigDict()
  c.losses.d_input = "composite"
  c.losses.d_input_mask = False
  # `--mode=eval` settings (`--config.eval.*`; fields: inpaint_jax.evaluation.runner).
  c.eval = config_lib.eval_config()

  if a.variant == "small_holes":
    c.generator.rec_ksize = 5
  if small:
    set_run_length(c, "demo", total_steps=300, checkpoint_every_steps=100)
    c.phases.finetune = dict(start_step=200, freeze_bn=True, lr={"g": 2.5e-4})
    # LaMa's strokes are sized for 256 px and cover nearly everything at 32-64 px.
    c.masks.kind = "dfnet_free_form"
    c.generator.ngf = 16
    c.generator.tail_ch = 16
    c.optim.g.lr = 1e-3
  if a.variant == "tiny":
    set_run_length(c, "tiny", batch_size=2)
    c.phases.finetune = dict(start_step=2, freeze_bn=True, lr={"g": 2.5e-4})
    c.generator.ngf = 4
    c.generator.tail_ch = 8
    c.generator.n_rec = 2
  else:
    # `--mode=eval`: DGFNet's Table 1, where RFR-Net is a row.
    config_lib.eval_protocol(c, **paper.TABLE_1)
  return c
