"""Each family config's evaluation protocol: the paper's rows on mask sets that exist."""

import helpers
import pytest

from inpaint_jax import config_lib
from inpaint_jax.data import mask_sets
from inpaint_jax.evaluation import protocol, runner

# (config, variant, the periodic validation's sets, the published models' columns)
CASES = [("lama", "demo", "irregular_20_30", ["LaMa-Fourier (Table 1)"]),
         ("lama", "fourier", "thick_256", ["LaMa-Fourier (Table 1)"]),
         ("lama", "big", "thick_256", []),
         ("dgfnet", "demo", "thick_256", ["RFR-Net", "DGFNet"]),
         ("rfr", "paris", "thick_256", ["RFR-Net", "DGFNet"]),
         ("dcf", "official", "thick_256", ["DCF (README, best epoch)"])]


@pytest.mark.parametrize("family,variant,periodic,models", CASES)
def test_config_protocols(family, variant, periodic, models):
  config = helpers.config_module(family).get_config(variant)
  ev = config.eval
  protocol.check(ev.protocol)
  sets = [s for _, s in protocol.rows(ev.protocol)]
  assert ev.masks == ",".join(dict.fromkeys(sets))
  assert all(s in mask_sets.PRESETS or s == runner.TRAIN_MASKS for s in sets), sets
  assert ev.metrics == ev.protocol.metrics
  assert ev.periodic_masks == periodic
  assert list(dict.fromkeys(p["model"] for p in ev.protocol.published)) == models
  if (family, variant) == ("lama", "demo"):   # the demo's own set and size come first
    assert sets[0] == "irregular_20_30" and len(sets) == 7


def test_tiny_variants_keep_the_plain_evaluation():
  for family in ("lama", "rfr", "dgfnet", "dcf"):
    config = helpers.config_module(family).get_config("tiny")
    assert config_lib.eval_settings(config).protocol is None
