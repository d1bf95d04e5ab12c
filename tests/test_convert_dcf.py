"""`convert dcf` + the inpaint command on an official-layout DCF training checkpoint.

The test writes what the official `Trainer.save_checkpoint` writes (generator and
discriminator state_dicts, AdamW / cosine-scheduler / grad-scaler states, the config
dict, counters) from the golden weights, converts it with no config flags and runs the
inpaint command on single photos. The reference is the official module's eval output
under exact gates (every quarter kept, `importance_gate="all"`, what the converted config
holds), composited, in [0, 1] (the official evaluation de-normalises): for chelsea from
`dcf_exact_gates.npz`, for the astronaut from `dcf_small.npz`, whose float gates for it
were already all ones.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch writes the official checkpoint")

from tests import helpers  # noqa: E402

GOLDEN = pathlib.Path(__file__).parent / "data" / "dcf_small.npz"
EXACT = pathlib.Path(__file__).parent / "data" / "dcf_exact_gates.npz"
MEAN = np.float32((0.485, 0.456, 0.406))
STD = np.float32((0.229, 0.224, 0.225))


def _run(module, *args):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  r = subprocess.run([sys.executable, "-m", module, *args], cwd=helpers.REPO, env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  return r


def _unit(x_nchw: np.ndarray) -> np.ndarray:
  """One ImageNet-normalised (3, H, W) image -> (H, W, 3) in [0, 1]."""
  return np.transpose(x_nchw, (1, 2, 0)) * STD + MEAN


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("dcf_convert")
  z = dict(np.load(GOLDEN))
  g_sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in z.items()
          if "/" not in k and k != "meta_json"}
  d_sd = {k[len("disc/"):]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in z.items()
          if k.startswith("disc/model.")}
  for sd in (g_sd, d_sd):
    for k in sd:
      if k.endswith("num_batches_tracked"):
        sd[k] = torch.tensor(int(sd[k]), dtype=torch.int64)
  params = [torch.nn.Parameter(v.clone()) for k, v in g_sd.items() if v.is_floating_point()]
  opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.5, 0.999), weight_decay=1e-4)
  for p in params:
    p.grad = torch.ones_like(p)
  opt.step()
  sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-6)
  meta = json.loads(str(z["meta_json"]))
  config = dict(meta["config"], image_size=64, device="cpu", batch_size=32)
  checkpoint = {
      "epoch": 3, "global_step": 750, "generator_state_dict": g_sd,
      "discriminator_state_dict": d_sd, "optimizer_G_state_dict": opt.state_dict(),
      "optimizer_D_state_dict": opt.state_dict(), "scheduler_G_state_dict": sched.state_dict(),
      "scheduler_D_state_dict": sched.state_dict(), "config": config, "best_psnr": 21.5,
      "metrics": {"psnr": 21.5, "ssim": 0.8}, "train_losses": [1.0, 0.9],
      "scaler_G": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                   "growth_interval": 2000, "_growth_tracker": 0},
      "scaler_D": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                   "growth_interval": 2000, "_growth_tracker": 0}}
  ckpt = tmp / "best_model.pth"
  torch.save(checkpoint, ckpt)
  _run("inpaint_jax.convert", "dcf", "--checkpoint", str(ckpt), "--output", str(tmp / "model"))
  return tmp, z


def test_converted_directory(converted):
  tmp, _ = converted
  manifest = json.loads((tmp / "model" / "manifest.json").read_text())
  assert manifest["family"] == "dcf"
  assert manifest["nets"]["g"]["params"] == 125822
  assert manifest["nets"]["d"]["params"] == 11193
  assert manifest["nets"]["d"]["collections"] == ["spectral"]
  assert manifest["epoch"] == 3 and manifest["global_step"] == 750
  config = json.loads((tmp / "model" / "config.json").read_text())
  assert config["generator"]["encoder_depths"] == [12, 16, 24, 32]
  assert config["generator"]["value_range"] == "imagenet"
  assert config["generator"]["importance_gate"] == "all"
  assert config["discriminator"]["filters"] == 8


def test_overrides_win_over_the_converter(converted):
  tmp, _ = converted
  _run("inpaint_jax.convert", "dcf", "--checkpoint", str(tmp / "best_model.pth"), "--output",
       str(tmp / "model_official"), "--config.generator.importance_gate=official",
       "--config.generator.value_range=symmetric")
  config = json.loads((tmp / "model_official" / "config.json").read_text())
  assert config["generator"]["importance_gate"] == "official"
  assert config["generator"]["value_range"] == "symmetric"


@pytest.mark.parametrize("case", ["astronaut", "chelsea"])
def test_inpaint_matches_the_official_composite(converted, case):
  tmp, z = converted
  if case == "chelsea":   # sample 1 of case 1: alone it still runs 3 stages
    ref = np.load(EXACT)["eval/output"][1]
    image, mask = z["io/image"][1], z["io/mask"][1, 0]
  else:
    image, mask, ref = z["io2/image"][0], z["io2/mask"][0, 0], z["io2/output"][0]
  np.save(tmp / f"{case}.npy", _unit(image).astype(np.float32))
  np.save(tmp / f"{case}_mask.npy", mask.astype(np.float32))
  _run("inpaint_jax.inpaint", "--checkpoint", str(tmp / "model"), "--image",
       str(tmp / f"{case}.npy"), "--mask", str(tmp / f"{case}_mask.npy"), "--output",
       str(tmp / f"{case}_out.npy"))
  out = np.load(tmp / f"{case}_out.npy")
  want = _unit(ref)
  err = float(np.max(np.abs(out - want)))
  print(f"\n[dcf convert+inpaint {case}] max abs err vs the official composite {err:.3g}")
  assert err <= 1e-4
  known = mask == 0
  np.testing.assert_allclose(out[known], _unit(image)[known], atol=1e-6)
