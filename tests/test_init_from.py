"""`--config.init_from=DIR`: fine-tuning starts from a converted model directory."""

from __future__ import annotations

import helpers
import jax
import lama_fixtures as lf
import numpy as np
import pytest

from inpaint_jax import restore, train
from inpaint_jax import system as system_lib
from inpaint_jax.convert import __main__ as convert_cli
from inpaint_jax.inference import engine
from inpaint_jax.models import api

pytestmark = pytest.mark.slow


def _predict(path, image, mask):
  config, g_model, variables = restore.load_generator(path)
  return np.asarray(engine.composite(api.get_adapter(config), g_model, variables, image, mask))


def test_train_from_converted_checkpoint(tmp_path):
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    g, d = lf.random_lama_variables(helpers.tiny_config(), seed=5)
    lf.save_lightning_checkpoint(str(tmp_path / "t.ckpt"), lf.official_state_dict(g, d))
    md = str(tmp_path / "md")
    convert_cli.run(["lama", "--checkpoint", str(tmp_path / "t.ckpt"), "--output", md,
                     "--config=configs/lama.py:tiny"])
    workdir = str(tmp_path / "run")
    config = helpers.tiny_config(init_from=md, total_steps=2, checkpoint_every_steps=2,
                                 image_every_steps=100)
    state = train.train_and_evaluate(config, workdir)
    # Started from the converted weights: two Adam steps (lr 1e-3, clipped) move each
    # parameter by a few 1e-3 at most, while a fresh init is far away.
    trained = jax.device_get(state.nets["g"].params)
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), trained,
                                             g["params"])))
    assert 0 < moved < 0.01
    d_moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(),
                                               jax.device_get(state.nets["d"].params),
                                               d["params"])))
    assert d_moved < 0.01
    rng = np.random.default_rng(0)
    image = rng.random((1, 32, 32, 3)).astype(np.float32)
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[:, 8:20, 4:28] = 1
    assert np.abs(_predict(workdir, image, mask) - _predict(md, image, mask)).max() > 1e-6
    # A resumed run ignores init_from (even a path that no longer exists).
    config = helpers.tiny_config(init_from=str(tmp_path / "gone"), total_steps=2)
    again = train.train_and_evaluate(config, workdir)
    assert int(again.step) == 2
    np.testing.assert_array_equal(jax.device_get(again.nets["g"].params["out"]["kernel"]),
                                  trained["out"]["kernel"])
    # A model of another shape is refused, naming the field.
    other = system_lib.build(helpers.tiny_config(**{"generator.ngf": 4}))
    other_state = jax.jit(lambda r: system_lib.init_state(other, r))(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="config field init_from=.* net 'g' does not match"):
      restore.init_from(other, other_state, md)
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
