"""DFNet family: options of the generator, converter round trips, masks, SN-PatchGAN."""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.data import masks
from inpaint_jax.models.dfnet import torch_keys as convert_dfnet
from inpaint_jax.models.dfnet.network import DFNet
from inpaint_jax.models.discriminators import SNPatchGANDiscriminator
from inpaint_jax.models.layers import add_coord_channels, same_padding
from inpaint_jax.weights import torch_file

# Tiny nets: XLA's optimisation passes cost more compile time than they save.
pytestmark = pytest.mark.usefixtures("fast_compile")

GOLDEN = pathlib.Path(__file__).parent / "data" / "dfnet_small.npz"
SMALL = dict(en_ksize=(7, 5, 3), de_ksize=(3, 3, 3), blend_layers=(0, 1), c_base=4, c_max=8)


def _inputs(n=2, s=16, seed=0):
  rng = np.random.default_rng(seed)
  image = jnp.asarray(rng.random((n, s, s, 3)), jnp.float32)
  mask = jnp.zeros((n, s, s, 1)).at[:, 4:10, 3:12].set(1.0)
  return image, mask


def _n_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_same_padding_matches_the_official_rule():
  assert [same_padding(k, 2) for k in (7, 5, 3)] == [(2, 3), (1, 2), (0, 1)]
  assert same_padding(3, 1) == (1, 1) and same_padding(1, 1) == (0, 0)


def test_published_parameter_count():
  gen = DFNet()
  x, m = jnp.zeros((1, 256, 256, 3)), jnp.zeros((1, 256, 256, 1))
  shapes = jax.eval_shape(functools.partial(gen.init, train=False), jax.random.PRNGKey(0), x, m)
  assert _n_params(shapes["params"]) == 32_880_504


@pytest.mark.parametrize("options", [
    dict(mode="deconv"), dict(norm="instance"), dict(norm="none", act_en="elu"),
    dict(coord_conv=True), dict(c_alpha=1)])
def test_options_run_and_convert_back(options):
  gen = DFNet(**SMALL, **options)
  image, mask = _inputs()
  variables = jax.jit(functools.partial(gen.init, train=False))(
      jax.random.PRNGKey(1), image, mask)
  out = jax.jit(functools.partial(gen.apply, train=False))(variables, image, mask)
  assert [y.shape for y in out["scales"]] == [(2, 16, 16, 3), (2, 8, 8, 3)]
  assert out["alphas"][0].shape[-1] == options.get("c_alpha", 3)
  np.testing.assert_array_equal(out["pred"], out["scales"][0])
  if options.get("coord_conv"):
    return  # CoordConv weights have no official layout
  config = {**gen_fields(gen)}
  sd = convert_dfnet.variables_to_torch(jax.tree.map(np.asarray, dict(variables)), config)
  norm = None if options.get("norm", "batch") == "batch" else options["norm"]
  back_config, back = convert_dfnet.variables_from_torch(sd, norm=norm)
  for key in ("mode", "norm", "c_alpha", "en_ksize", "de_ksize", "blend_layers", "c_base",
              "c_max"):
    assert tuple(np.atleast_1d(back_config[key])) == tuple(np.atleast_1d(config[key])), key
  jax.tree.map(np.testing.assert_array_equal, back, jax.tree.map(np.asarray, dict(variables)))


def gen_fields(gen: DFNet) -> dict:
  return dict(c_img=gen.c_img, c_mask=gen.c_mask, c_alpha=gen.c_alpha, mode=gen.mode,
              norm=gen.norm, en_ksize=tuple(gen.en_ksize), de_ksize=tuple(gen.de_ksize),
              blend_layers=tuple(gen.blend_layers), c_base=gen.c_base, c_max=gen.c_max)


def test_known_pixels_and_mask_convention():
  """The hole content never reaches the network (it sees image * (1 - mask))."""
  gen = DFNet(**SMALL)
  image, mask = _inputs()
  variables = gen.init(jax.random.PRNGKey(1), image, mask, train=False)
  noisy = jnp.where(mask > 0, 1.0 - image, image)
  a = gen.apply(variables, image, mask, train=False)["pred"]
  b = gen.apply(variables, noisy, mask, train=False)["pred"]
  np.testing.assert_array_equal(a, b)


def test_size_rule_and_bad_options():
  gen = DFNet(**SMALL)
  image, mask = _inputs(s=12)
  with pytest.raises(ValueError, match="multiples of 8"):
    gen.init(jax.random.PRNGKey(0), image, mask, train=False)
  image, mask = _inputs()
  with pytest.raises(ValueError, match="blend_layers must contain 0"):
    DFNet(**{**SMALL, "blend_layers": (1,)}).init(jax.random.PRNGKey(0), image, mask,
                                                   train=False)


def test_coord_channels():
  y = add_coord_channels(jnp.zeros((1, 2, 3, 1)))
  np.testing.assert_allclose(y[0, 0, :, 1], [-1, 0, 1])
  np.testing.assert_allclose(y[0, :, 0, 2], [-1, 1])


def test_converter_errors():
  with pytest.raises(convert_dfnet.DFNetCheckpointError, match="DFNet encoder"):
    convert_dfnet.variables_from_torch({"model.1.weight": np.zeros((1, 1, 1, 1))})
  data = dict(np.load(GOLDEN))
  sd = {k: v for k, v in data.items() if "/" not in k and k != "meta_json"}
  sd["extra.weight"] = np.zeros(3)
  with pytest.raises(convert_dfnet.DFNetCheckpointError, match="unexpected"):
    convert_dfnet.variables_from_torch(sd)


def test_legacy_torch_file_with_int64_counters(tmp_path):
  """The release format: a bare state_dict, torch's legacy serialisation, int64 counters."""
  torch = pytest.importorskip("torch", reason="torch writes the legacy-format fixture")
  data = dict(np.load(GOLDEN))
  sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()
        if "/" not in k and k != "meta_json"}
  for k in sd:
    if k.endswith("num_batches_tracked"):
      sd[k] = torch.tensor(4, dtype=torch.int64)
  path = tmp_path / "model_small.pth"
  torch.save(sd, path, _use_new_zipfile_serialization=False)
  loaded = torch_file.load_state_dict(path)
  config, variables = convert_dfnet.variables_from_torch(loaded)
  assert config["c_base"] == 6 and config["blend_layers"] == (0, 1, 2, 3)
  ref = data["en_0.encode.0.conv.1.weight"].transpose(2, 3, 1, 0)
  np.testing.assert_array_equal(variables["params"]["en_0"]["kernel"], ref)


def test_free_form_masks():
  gen = masks.build({"kind": "dfnet_free_form"})
  got = [gen.sample(np.random.default_rng([0, i]), 64, 64) for i in range(20)]
  for m in got:
    assert m.dtype == np.float32 and m.shape == (64, 64)
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert 0.1 <= m.mean() < 0.2
  np.testing.assert_array_equal(got[3], gen.sample(np.random.default_rng([0, 3]), 64, 64))
  with pytest.raises(ValueError, match="masks.foo"):
    masks.build({"kind": "dfnet_free_form", "foo": 1})


def test_folder_masks(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  known = np.full((100, 80), 255, np.uint8)
  known[30:60, 20:50] = 0  # a hole; white = known, as DFNet's files
  Image.fromarray(known).save(tmp_path / "m.png")
  gen = masks.build({"kind": "dfnet_folder", "folder": str(tmp_path)})
  ms = [gen.sample(np.random.default_rng(i), 64, 64) for i in range(8)]
  assert all(set(np.unique(m)) <= {0.0, 1.0} for m in ms)
  assert 0 < np.mean(ms) < 0.5
  np.testing.assert_array_equal(ms[2], gen.sample(np.random.default_rng(2), 64, 64))
  plain = masks.build({"kind": "dfnet_folder", "folder": str(tmp_path), "flip": False,
                       "degrees": 0.0, "zoom": (1.0, 1.0), "translate": 0.0, "shear": 0.0})
  m = plain.sample(np.random.default_rng(0), 100, 80)
  np.testing.assert_array_equal(m, (known < 128).astype(np.float32))
  with pytest.raises(ValueError, match="masks.folder"):
    masks.build({"kind": "dfnet_folder"})


def test_sn_patchgan_counts_and_trains():
  d = SNPatchGANDiscriminator()
  shapes = jax.eval_shape(functools.partial(d.init, train=False), jax.random.PRNGKey(0),
                          jnp.zeros((1, 64, 64, 4)))
  assert _n_params(shapes["params"]) == 5_946_816  # DeepFill v2 with image + mask input

  d = SNPatchGANDiscriminator(ndf=4)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 64, 64, 4))
  variables = jax.jit(functools.partial(d.init, train=False))(jax.random.PRNGKey(0), x)
  assert set(variables) == {"params", "spectral"}

  def loss(params, spectral):
    (out, _), new = d.apply({"params": params, "spectral": spectral}, x, train=True,
                            mutable=["spectral"])
    return jnp.mean(jax.nn.relu(1.0 - out)), new["spectral"]

  (value, new_spectral), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      variables["params"], variables["spectral"])
  assert out_changed(variables["spectral"], new_spectral)
  gnorm = sum(float(jnp.sum(g * g)) for g in jax.tree.leaves(grads))
  assert np.isfinite(float(value)) and gnorm > 0  # the weights are trainable parameters
  with pytest.raises(ValueError, match="d_input_mask"):
    d.init(jax.random.PRNGKey(0), x[..., :3], train=False)


def out_changed(a, b) -> bool:
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                       strict=True))
