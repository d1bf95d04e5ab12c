"""`convert dfnet` + the inpaint command on an official-layout checkpoint (legacy format)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch writes the legacy-format checkpoint")

from tests import helpers  # noqa: E402

GOLDEN = pathlib.Path(__file__).parent / "data" / "dfnet_small.npz"


def _run(module, *args):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  r = subprocess.run([sys.executable, "-m", module, *args], cwd=helpers.REPO, env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  return r


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("dfnet_convert")
  d = dict(np.load(GOLDEN))
  sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()
        if "/" not in k and k != "meta_json"}
  for k in sd:
    if k.endswith("num_batches_tracked"):
      sd[k] = torch.tensor(4, dtype=torch.int64)  # as in the release
  ckpt = tmp / "model_small.pth"
  torch.save(sd, ckpt, _use_new_zipfile_serialization=False)
  image = np.transpose(d["io/image"][0], (1, 2, 0)).astype(np.float32)
  hole = (1.0 - d["io/mask"][0, 0]).astype(np.float32)
  np.save(tmp / "img.npy", image)
  np.save(tmp / "mask.npy", hole)
  return tmp, d, image, hole


def test_rgb_weights_match_the_official_composite(files):
  tmp, d, image, hole = files
  _run("inpaint_jax.convert", "dfnet", "--checkpoint", str(tmp / "model_small.pth"),
       "--output", str(tmp / "rgb"), "--channel-order", "rgb")
  _run("inpaint_jax.inpaint", "--checkpoint", str(tmp / "rgb"), "--image", str(tmp / "img.npy"),
       "--mask", str(tmp / "mask.npy"), "--output", str(tmp / "out.npy"))
  out = np.load(tmp / "out.npy")
  known = (1.0 - hole)[..., None]
  ref = image * known + np.transpose(d["eval/result_0"][0], (1, 2, 0)) * (1.0 - known)
  err = float(np.max(np.abs(out - ref)))
  print(f"\n[dfnet convert+inpaint] max abs err vs the official composite {err:.3g}")
  assert err <= 1e-4
  np.testing.assert_array_equal(out[hole == 0], image[hole == 0])


def test_bgr_default_and_resize_rule(files):
  tmp, _, image, hole = files
  _run("inpaint_jax.convert", "dfnet", "--checkpoint", str(tmp / "model_small.pth"),
       "--output", str(tmp / "bgr"))
  _run("inpaint_jax.inpaint", "--checkpoint", str(tmp / "bgr"), "--image", str(tmp / "img.npy"),
       "--mask", str(tmp / "mask.npy"), "--output", str(tmp / "bgr.npy"))
  # BGR weights on RGB input = RGB weights on the channel-flipped input, flipped back.
  np.save(tmp / "img_flip.npy", image[..., ::-1])
  _run("inpaint_jax.inpaint", "--checkpoint", str(tmp / "rgb"), "--image",
       str(tmp / "img_flip.npy"), "--mask", str(tmp / "mask.npy"), "--output",
       str(tmp / "flip.npy"))
  np.testing.assert_allclose(np.load(tmp / "bgr.npy"), np.load(tmp / "flip.npy")[..., ::-1],
                             atol=1e-6)
  # 60 x 70 is no multiple of 2**6: resized to 64 x 64 inside, known pixels untouched.
  np.save(tmp / "img_odd.npy", image[:60, :, :][:, np.r_[0:64, 0:6]])
  np.save(tmp / "mask_odd.npy", hole[:60][:, np.r_[0:64, 0:6]])
  _run("inpaint_jax.inpaint", "--checkpoint", str(tmp / "rgb"), "--image",
       str(tmp / "img_odd.npy"), "--mask", str(tmp / "mask_odd.npy"), "--output",
       str(tmp / "odd.npy"))
  out, img, m = np.load(tmp / "odd.npy"), np.load(tmp / "img_odd.npy"), np.load(
      tmp / "mask_odd.npy")
  assert out.shape == (60, 70, 3)
  np.testing.assert_array_equal(out[m == 0], img[m == 0])
