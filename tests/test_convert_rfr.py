"""`convert rfr` + the inpaint command on an official-layout checkpoint, and the adapter."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from inpaint_jax.inference import engine as inference
from inpaint_jax.models.rfr import convert as rfr_converter
from inpaint_jax.models.rfr.network import RFRNet
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

GOLDEN = pathlib.Path(__file__).parent / "data" / "rfr_small.npz"


def _run(module, *args, ok=True):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  r = subprocess.run([sys.executable, "-m", module, *args], cwd=helpers.REPO, env=env,
                     capture_output=True, text=True, timeout=600)
  if ok:
    assert r.returncode == 0, r.stderr[-2000:]
  return r


def _state_dict():
  d = dict(np.load(GOLDEN))
  return d, {k: v for k, v in d.items() if "/" not in k and k != "meta_json"}


def test_save_ckpt_dict_converts_and_inpaints_like_the_official_composite(tmp_path):
  torch = pytest.importorskip("torch", reason="torch writes the official checkpoint")
  d, sd = _state_dict()
  gen = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
  for k in gen:
    if k.endswith("num_batches_tracked"):
      gen[k] = torch.tensor(30, dtype=torch.int64)
  # The official `save_ckpt` layout, in torch's legacy serialisation.
  ckpt = {"n_iter": 450_000, "generator": gen,
          "optimizer_G": {"state": {0: {"step": 3, "exp_avg": torch.zeros(2)}},
                          "param_groups": [{"lr": 2e-4, "params": [0]}]}}
  path = tmp_path / "g_450000.pth"
  torch.save(ckpt, path, _use_new_zipfile_serialization=False)
  image = np.transpose(d["io2/image"][0], (1, 2, 0)).astype(np.float32)
  hole = (1.0 - d["io2/mask"][0, 0]).astype(np.float32)
  np.save(tmp_path / "img.npy", image)
  np.save(tmp_path / "mask.npy", hole)
  _run("inpaint_jax.convert", "rfr", "--checkpoint", str(path), "--output",
       str(tmp_path / "model"), "--config.generator.n_rec=6")
  _run("inpaint_jax.inpaint", "--checkpoint", str(tmp_path / "model"), "--image",
       str(tmp_path / "img.npy"), "--mask", str(tmp_path / "mask.npy"), "--output",
       str(tmp_path / "out.npy"))
  out = np.load(tmp_path / "out.npy")
  known = (1.0 - hole)[..., None]
  ref = image * known + np.transpose(d["io2/output_eval"][0], (1, 2, 0)) * (1.0 - known)
  err = float(np.max(np.abs(out - ref)))
  print(f"\n[rfr convert+inpaint] max abs err vs the official composite {err:.3g}")
  assert err <= 1e-4
  np.testing.assert_array_equal(out[hole == 0], image[hole == 0])
  manifest = (tmp_path / "model" / "manifest.json").read_text()
  assert "450000" in manifest and "save_ckpt" in manifest
  # A bad n_rec is one error line naming the field.
  r = _run("inpaint_jax.convert", "rfr", "--checkpoint", str(path), "--output",
           str(tmp_path / "bad"), "--config.generator.n_rec=0", ok=False)
  assert r.returncode == 2 and "generator.n_rec" in r.stderr


def test_bare_state_dict_with_a_prefix_and_errors(tmp_path):
  from inpaint_jax.weights import torch_file

  _, sd = _state_dict()
  path = tmp_path / "bare.pth"
  torch_file.save_torch_state_dict(path, {f"module.{k}": v for k, v in sd.items()})
  got, info = rfr_converter.read_checkpoint(str(path))
  assert info == {"format": "state_dict", "stripped_prefix": "module."}
  assert sorted(got) == sorted(sd)
  other = tmp_path / "other.pth"
  torch_file.save_torch_state_dict(other, {"conv.weight": np.zeros((1, 1, 3, 3), np.float32)})
  with pytest.raises(ValueError, match="missing tensor Pconv1.weight"):
    rfr_converter.convert_rfr(str(other), None, {})
  with pytest.raises(ValueError, match="got a folder"):
    rfr_converter.read_checkpoint(str(tmp_path))


def test_adapter_pads_to_multiples_of_16_and_keeps_known_pixels():
  net = RFRNet(ngf=4, tail_ch=8, n_rec=1)
  # Random variables from the shapes alone (an init would compile the network once more).
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 48, 64, 3)),
                                           jnp.zeros((1, 48, 64, 1)), train=False))
  rng = np.random.default_rng(1)

  def fill(path, s):
    name = path[-1].key
    if name == "var":
      return np.ones(s.shape, np.float32)
    if name == "mean":
      return np.zeros(s.shape, np.float32)
    return (rng.normal(size=s.shape) * 0.2).astype(np.float32)

  variables = jax.tree_util.tree_map_with_path(fill, shapes)
  config = ml_collections.ConfigDict({"generator": {"name": "rfr"}})
  inp = inference.Inpainter(config, net, variables)
  assert inp.padded_shape(40, 57) == (48, 64) and inp.padded_shape(48, 64) == (48, 64)
  image = rng.random((40, 57, 3)).astype(np.float32)
  hole = np.zeros((40, 57, 1), np.float32)
  hole[10:25, 20:45] = 1.0
  out = inp(image, hole)
  assert out.shape == (40, 57, 3)
  np.testing.assert_array_equal(out[hole[..., 0] == 0], image[hole[..., 0] == 0])
  # The network saw the mirrored image and mask: run the adapter's (already compiled)
  # pass on them directly and crop.
  padded = np.pad(image, ((0, 8), (0, 7), (0, 0)), mode="symmetric")
  pmask = np.pad(hole, ((0, 8), (0, 7), (0, 0)), mode="symmetric")
  ref = np.asarray(inp.submit(padded, pmask).result())[:40, :57]
  np.testing.assert_array_equal(out, ref)
  assert np.abs(out - image)[hole[..., 0] == 1].max() > 0  # the hole was filled
