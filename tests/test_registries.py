"""Every registry's names: a move of a module can never drop a registered part silently.

The expected lists are written out in full; a new part adds its name here.
"""

import importlib
import pkgutil

import inpaint_jax
from inpaint_jax import registry

EXPECTED = {
    "AUGMENTATIONS": ["distortions", "flip", "none", "resize_flip_jitter"],
    "BACKBONES": ["ade20k_resnet50", "vgg16", "vgg19"],
    "CONVERTERS": ["ade20k_resnet50", "dcf", "dfnet", "inception", "lama", "lpips", "rfr",
                   "vgg16", "vgg19"],
    "DATA_SOURCES": ["embedded", "folder", "tfds"],
    "DISCRIMINATORS": ["dcf_patch", "dpnet_patch", "nlayer", "sn_patchgan"],
    "GENERATORS": ["dcf", "dfnet", "dgfnet", "dpnet", "ffc_resnet", "rfr"],
    "INPAINTERS": ["dcf", "dfnet", "dgfnet", "dpnet", "ffc_resnet", "rfr"],
    "LOSSES": [
        "bce_d", "bce_g", "boundary_gradient", "charbonnier", "color_consistency",
        "feature_matching", "focal_frequency", "gradient_penalty", "gram_style", "hinge_d",
        "hinge_g", "hole_l1", "l1", "log_spectrum_l1", "lsgan_d", "lsgan_g", "masked_l1",
        "multiscale_l1", "nonsaturating_d", "nonsaturating_g", "r1_penalty", "resnet_pl",
        "smooth_transition", "total_variation", "valid_l1", "vgg_perceptual", "wgan_d",
        "wgan_g"],
    "MASK_GENERATORS": [
        "dcf_random_walk", "dfnet_folder", "dfnet_free_form", "lama_box", "lama_irregular",
        "lama_medium_256", "lama_medium_512", "lama_mixed", "lama_thick_256", "lama_thick_512",
        "lama_thin_256", "lama_thin_512", "square", "study_mixed"],
}

# Command modules define absl flags at import and are never imported as libraries.
COMMANDS = {"inpaint_jax.main", "inpaint_jax.bench", "inpaint_jax.eval_mode",
            "inpaint_jax.metrics.bench", "inpaint_jax.data.masks_bench"}


def _registries() -> dict[str, registry.Registry]:
  return {name: obj for name, obj in vars(registry).items()
          if isinstance(obj, registry.Registry)}


def test_every_registry_is_listed():
  assert sorted(_registries()) == sorted(EXPECTED)


def test_importing_every_module_registers_exactly_the_expected_names():
  for info in pkgutil.walk_packages(inpaint_jax.__path__, "inpaint_jax."):
    if info.name.endswith("__main__") or info.name in COMMANDS:
      continue
    importlib.import_module(info.name)
  got = {name: reg.names() for name, reg in _registries().items()}
  assert got == EXPECTED
