"""configs/lama.py loss recipes: HRFPL, the loss variants, and the missing-weights error."""

import pytest

from inpaint_jax import losses, models  # noqa: F401  (registers terms and backbones)
from inpaint_jax.registry import BACKBONES, LOSSES
from tests import helpers


def _recipe_names(c):
  return ({k: v.fn for k, v in c.losses.generator.items()},
          {k: v.fn for k, v in c.losses.discriminator.items()})


@pytest.mark.parametrize("variant", ["fourier", "big"])
def test_hrfpl_in_the_published_recipes(variant):
  c = helpers.tiny_config(variant)
  t = c.losses.generator.hrfpl
  assert (t.fn, t.weight, t.backbone, t.bn_mode) == ("resnet_pl", 30.0, "resnet_pl", "train")
  assert c.frozen.resnet_pl.kind == "ade20k_resnet50"
  assert c.frozen.resnet_pl.path.endswith(
      "ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth")


@pytest.mark.parametrize("variant", ["demo", "tiny"])
def test_demo_and_tiny_need_no_weights(variant):
  c = helpers.tiny_config(variant)
  assert "hrfpl" not in c.losses.generator and not c.frozen
  assert "hrfpl" in helpers.tiny_config(f"{variant},hrfpl").losses.generator


@pytest.mark.parametrize("arg,variant,gen,disc,frozen", [
    ("hinge", "fourier", {"l1": "masked_l1", "adv_hinge": "hinge_g", "fm": "feature_matching",
                          "hrfpl": "resnet_pl"},
     {"adv_hinge": "hinge_d", "r1": "r1_penalty"}, {"resnet_pl"}),
    ("vgg_pl", "fourier", {"l1": "masked_l1", "adv": "nonsaturating_g",
                           "fm": "feature_matching", "vgg_pl": "vgg_perceptual"},
     {"adv": "nonsaturating_d", "r1": "r1_penalty"}, {"vgg19"}),
    ("ffl", "fourier", {"l1": "masked_l1", "adv": "nonsaturating_g", "fm": "feature_matching",
                        "hrfpl": "resnet_pl", "ffl": "focal_frequency"},
     {"adv": "nonsaturating_d", "r1": "r1_penalty"}, {"resnet_pl"}),
    ("demo,hinge,ffl", "demo", {"l1": "masked_l1", "adv_hinge": "hinge_g",
                                "fm": "feature_matching", "ffl": "focal_frequency"},
     {"adv_hinge": "hinge_d", "r1": "r1_penalty"}, set()),
    ("big,vgg_pl", "big", {"l1": "masked_l1", "adv": "nonsaturating_g",
                           "fm": "feature_matching", "vgg_pl": "vgg_perceptual"},
     {"adv": "nonsaturating_d", "r1": "r1_penalty"}, {"vgg19"}),
])
def test_loss_variants(arg, variant, gen, disc, frozen):
  c = helpers.tiny_config(arg)
  assert c.variant == variant
  assert _recipe_names(c) == (gen, disc)
  assert set(c.frozen) == frozen
  for t in list(c.losses.generator.values()) + list(c.losses.discriminator.values()):
    assert t.fn in LOSSES
  for b in c.frozen.values():
    assert b.kind in BACKBONES


def test_vgg_pl_is_lamas_vgg_ablation():
  t = helpers.tiny_config("vgg_pl").losses.generator.vgg_pl
  assert (t.weight, t.backbone, t.distance, t.pooling, t.region, t.batch_reduction) == (
      0.03, "vgg19", "mse", "avg", "known", "sum")
  assert t.imagenet_normalize and len(t.layers) == 13 and t.layers[-1] == "relu5_1"


def test_missing_hrfpl_weights_stop_before_training(tmp_path):
  r = helpers.run_main(["--config=configs/lama.py", f"--workdir={tmp_path}",
                        f"--config.frozen.resnet_pl.path={tmp_path}/nope.pth"], timeout=300)
  assert r.returncode == 2, r.stderr[-2000:]
  line = r.stderr.strip().splitlines()[-1]
  for part in ("encoder_epoch_20.pth", "http://sceneparsing.csail.mit.edu/model/pytorch/",
               "--config.frozen.resnet_pl.path="):
    assert part in line, line
  assert "step 1" not in r.stderr
