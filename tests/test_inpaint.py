"""`python -m inpaint_jax.inpaint`: LaMa's predict path, input kinds, refusals, folder mode."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import helpers
import jax
import lama_fixtures as lf
import numpy as np
import pytest
from PIL import Image

from inpaint_jax import inpaint as inpaint_cli
from inpaint_jax import restore
from inpaint_jax.convert import __main__ as convert_cli
from inpaint_jax.data import image_io

jax.config.update("jax_disable_most_optimizations", True)

H, W = 37, 45  # not multiples of 8


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  """A converted tiny LaMa (odd widths) as a model directory."""
  tmp = tmp_path_factory.mktemp("model")
  config = helpers.tiny_config(**{f"generator.{k}": v for k, v in lf.ODD_GENERATOR.items()})
  g, d = lf.random_lama_variables(config)
  lf.save_lightning_checkpoint(str(tmp / "last.ckpt"), lf.official_state_dict(g, d))
  convert_cli.run(["lama", "--checkpoint", str(tmp / "last.ckpt"), "--output", str(tmp / "md")])
  return str(tmp / "md")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("files")
  rng = np.random.default_rng(0)
  rgb = (rng.random((H, W, 3)) * 255).astype(np.uint8)
  Image.fromarray(rgb).save(tmp / "img.png")
  mask = np.zeros((H, W), np.uint8)
  mask[10:20, 5:30] = 255
  mask[30:34, 40:44] = 255
  Image.fromarray(mask).save(tmp / "mask.png")
  return tmp, rgb, mask


def _run(*args):
  """main() in-process: (exit code, stderr lines)."""
  try:
    inpaint_cli.main([str(a) for a in args])
    code = 0
  except SystemExit as e:
    code = e.code
  return code


def official_predict(model_path, image_path, mask_path) -> np.ndarray:
  """LaMa's bin/predict.py pixel path, step by step, with our generator."""
  _, g_model, variables = restore.load_generator(model_path)
  img = np.array(Image.open(image_path).convert("RGB")).astype("float32") / 255
  mask = (np.array(Image.open(mask_path).convert("L")).astype("float32") / 255)[..., None]
  h, w = img.shape[:2]
  ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
  pad = ((0, ph - h), (0, pw - w), (0, 0))
  img_p, mask_p = np.pad(img, pad, mode="symmetric"), np.pad(mask, pad, mode="symmetric")
  mask_p = (mask_p > 0) * 1.0
  m = mask_p[None].astype(np.float32)
  pred = g_model.apply(variables, img_p[None], m, train=False)["pred"]
  res = np.asarray(m * pred + (1 - m) * img_p[None])[0, :h, :w]
  return np.clip(res * 255, 0, 255).astype("uint8")


def test_matches_official_predict_path(model, files, tmp_path, capsys):
  tmp, rgb, _ = files
  assert _run("--checkpoint", model, "--image", tmp / "img.png", "--mask", tmp / "mask.png",
              "--output", tmp_path / "out.png") == 0
  assert capsys.readouterr().out.strip().splitlines() == [f"wrote {tmp_path / 'out.png'}"]
  got = np.asarray(Image.open(tmp_path / "out.png"))
  want = official_predict(model, tmp / "img.png", tmp / "mask.png")
  assert got.shape == (H, W, 3)
  assert np.abs(got.astype(int) - want).max() <= 1
  known = np.asarray(Image.open(tmp / "mask.png")) == 0
  np.testing.assert_array_equal(got[known], rgb[known])


def test_npy_in_out_is_eval_output_composited(model, tmp_path):
  rng = np.random.default_rng(1)
  image = rng.random((32, 40, 3)).astype(np.float32)
  mask = np.zeros((32, 40), np.float32)
  mask[4:20, 8:30] = 1
  np.save(tmp_path / "i.npy", image)
  np.save(tmp_path / "m.npy", mask)
  assert _run("--checkpoint", model, "--image", tmp_path / "i.npy", "--mask", tmp_path / "m.npy",
              "--output", tmp_path / "o.npy") == 0
  got = np.load(tmp_path / "o.npy")
  _, g_model, variables = restore.load_generator(model)
  m = mask[None, ..., None]
  want = m * g_model.apply(variables, image[None], m, train=False)["pred"] + (1 - m) * image[None]
  assert got.dtype == np.float32 and got.shape == (32, 40, 3)
  np.testing.assert_allclose(got, np.asarray(want)[0], atol=1e-6)


def _write_kinds(tmp, rgb, mask):
  kinds = {}
  Image.fromarray(rgb).convert("L").save(tmp / "gray.png")
  kinds["gray"] = tmp / "gray.png"
  rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], -1)
  Image.fromarray(rgba).save(tmp / "rgba.png")
  kinds["rgba"] = tmp / "rgba.png"
  Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp / "pal.png")
  kinds["palette"] = tmp / "pal.png"
  Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp / "g16.png")
  kinds["gray16"] = tmp / "g16.png"
  cv2.imwrite(str(tmp / "rgb16.png"), rgb[..., ::-1].astype(np.uint16) * 257)
  kinds["rgb16"] = tmp / "rgb16.png"
  Image.fromarray(rgb).save(tmp / "img.jpg", quality=95)
  kinds["jpeg"] = tmp / "img.jpg"
  return kinds


def test_input_kinds(model, files, tmp_path):
  tmp, rgb, mask = files
  kinds = _write_kinds(tmp_path, rgb, mask)
  # 16-bit RGB reads exactly as its 8-bit source (v * 257 / 65535 = v / 255).
  np.testing.assert_allclose(image_io.read_image(str(kinds["rgb16"])), rgb / 255, atol=1e-6)
  np.testing.assert_allclose(image_io.read_image(str(kinds["gray16"]))[..., 0], rgb[..., 0] / 255,
                             atol=1e-6)
  np.testing.assert_array_equal(image_io.read_image(str(kinds["rgba"])),
                                rgb.astype(np.float32) / 255)
  for name, path in kinds.items():
    out = tmp_path / f"out_{name}.png"
    assert _run("--checkpoint", model, "--image", path, "--mask", tmp / "mask.png",
                "--output", out) == 0, name
    assert np.asarray(Image.open(out)).shape == (H, W, 3), name
  # Soft and RGB masks: any non-zero value is a hole.
  soft = (mask > 0) * np.random.default_rng(2).integers(1, 128, mask.shape)
  Image.fromarray(soft.astype(np.uint8)).save(tmp_path / "soft.png")
  rgb_mask = np.zeros((H, W, 3), np.uint8)
  rgb_mask[..., 2] = (mask > 0) * 200
  Image.fromarray(rgb_mask).save(tmp_path / "rgbmask.png")
  for m in ("soft.png", "rgbmask.png"):
    np.testing.assert_array_equal(image_io.read_mask(str(tmp_path / m))[..., 0], mask > 0)
  # EXIF orientation 6 (rotate 90 clockwise): the result has the displayed size.
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif.tobytes())
  Image.fromarray(np.rot90(mask, -1).copy()).save(tmp_path / "rot_mask.png")
  assert _run("--checkpoint", model, "--image", tmp_path / "rot.jpg", "--mask",
              tmp_path / "rot_mask.png", "--output", tmp_path / "rot_out.png") == 0
  assert np.asarray(Image.open(tmp_path / "rot_out.png")).shape == (W, H, 3)
  # A mask drawn on the stored (un-rotated) pixels is accepted too, as LaMa reads them.
  assert _run("--checkpoint", model, "--image", tmp_path / "rot.jpg", "--mask", tmp / "mask.png",
              "--output", tmp_path / "rot_out2.png") == 0
  assert np.asarray(Image.open(tmp_path / "rot_out2.png")).shape == (H, W, 3)


def test_empty_and_full_masks(model, files, tmp_path):
  tmp, rgb, _ = files
  Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "empty.png")
  Image.fromarray(np.full((H, W), 255, np.uint8)).save(tmp_path / "full.png")
  assert _run("--checkpoint", model, "--image", tmp / "img.png", "--mask", tmp_path / "empty.png",
              "--output", tmp_path / "e.png") == 0
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "e.png")), rgb)
  assert _run("--checkpoint", model, "--image", tmp / "img.png", "--mask", tmp_path / "full.png",
              "--output", tmp_path / "f.npy") == 0
  out = np.load(tmp_path / "f.npy")
  assert out.shape == (H, W, 3) and np.all(np.isfinite(out))
  # A tiny image (smaller than the network's minimum) is padded up and cropped back.
  np.save(tmp_path / "tiny.npy", np.full((5, 7, 3), 0.5, np.float32))
  np.save(tmp_path / "tiny_m.npy", np.ones((5, 7), np.float32))
  assert _run("--checkpoint", model, "--image", tmp_path / "tiny.npy", "--mask",
              tmp_path / "tiny_m.npy", "--output", tmp_path / "tiny_o.npy") == 0
  assert np.load(tmp_path / "tiny_o.npy").shape == (5, 7, 3)


def test_refusals(model, files, tmp_path, capsys):
  tmp, rgb, _ = files
  (tmp_path / "zero.png").write_bytes(b"")
  (tmp_path / "text.png").write_text("not an image at all")
  data = (tmp / "img.png").read_bytes()
  (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
  Image.fromarray(rgb[:20]).save(tmp_path / "small.png")
  np.save(tmp_path / "bad.npy", np.zeros((4, 4), np.float32))
  img, msk, out = tmp / "img.png", tmp / "mask.png", tmp_path / "o.png"
  cases = [
      (("--image", tmp_path / "nope.png", "--mask", msk), "no such file"),
      (("--image", tmp_path / "zero.png", "--mask", msk), "empty (0 bytes)"),
      (("--image", tmp_path / "text.png", "--mask", msk), "not an image file"),
      (("--image", tmp_path / "trunc.png", "--mask", msk), "truncated or corrupt"),
      (("--image", img, "--mask", tmp_path / "small.png"), "the mask is 45x20"),
      (("--image", tmp_path / "bad.npy", "--mask", msk), "accepted: float (H, W, 3)"),
      (("--image", img, "--mask", msk, "--output", tmp_path / "o.gifx"), "unknown output format"),
      (("--image", img), "--mask, --output required"),
  ]
  for args, needle in cases:
    argv = ["--checkpoint", model, *args]
    if "--output" not in args and "--mask" in args:
      argv += ["--output", out]
    assert _run(*argv) == 2, args
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, lines)
    bad = [str(a) for a in args if "nope" in str(a) or "zero" in str(a) or "text" in str(a)
           or "trunc" in str(a) or "small" in str(a) or "bad" in str(a)]
    assert all(b in lines[0] for b in bad), lines  # the message names the file
  # A real process: exit status 2 and no traceback.
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  r = subprocess.run([sys.executable, "-m", "inpaint_jax.inpaint", "--checkpoint", model,
                      "--image", str(tmp_path / "trunc.png"), "--mask", str(msk), "--output",
                      str(out)], cwd=helpers.REPO, env=env, capture_output=True, text=True,
                     timeout=120)
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith(f"error: --image {tmp_path / 'trunc.png'}")


def test_folder_mode(model, files, tmp_path, capsys):
  tmp, rgb, mask = files
  src, dst = tmp_path / "in", tmp_path / "out"
  (src / "sub").mkdir(parents=True)
  Image.fromarray(rgb).save(src / "a.png")
  Image.fromarray(mask).save(src / "a_mask000.png")
  Image.fromarray(255 - mask).save(src / "a_mask001.png")
  Image.fromarray(rgb[:32, :40]).save(src / "sub" / "b.png")
  Image.fromarray(mask[:32, :40]).save(src / "sub" / "b_mask.png")
  Image.fromarray(rgb).save(src / "lonely.png")                 # no mask: skipped, counted
  Image.fromarray(mask).save(src / "ghost_mask000.png")         # no image: skipped
  assert _run("--checkpoint", model, "--input-dir", src, "--output-dir", dst,
              "--no-progress") == 0
  captured = capsys.readouterr()
  err = captured.err
  assert "1 mask(s) without image, 1 image(s) without mask, 0 refused" in err
  assert captured.out.strip().splitlines() == [f"wrote 3 result(s) to {dst}"]
  for rel in ("a_mask000.png", "a_mask001.png", os.path.join("sub", "b_mask.png")):
    assert (dst / rel).is_file(), rel
  single = tmp_path / "single.png"
  assert _run("--checkpoint", model, "--image", src / "a.png", "--mask", src / "a_mask001.png",
              "--output", single) == 0
  np.testing.assert_array_equal(np.asarray(Image.open(dst / "a_mask001.png")),
                                np.asarray(Image.open(single)))
  # A broken pair is reported, the others are still written, exit status 2.
  (src / "c.png").write_bytes(b"")
  Image.fromarray(mask).save(src / "c_mask000.png")
  assert _run("--checkpoint", model, "--input-dir", src, "--output-dir", tmp_path / "out2",
              "--no-progress", "--bucket", "64") == 2
  err = capsys.readouterr().err
  assert f"image {src / 'c.png'}: the file is empty" in err
  assert (tmp_path / "out2" / "a_mask000.png").is_file()


@pytest.mark.parametrize("strategy", ["resize", "crop"])
def test_hd_strategies_keep_known_pixels(model, tmp_path, strategy):
  rng = np.random.default_rng(3)
  rgb = (rng.random((72, 96, 3)) * 255).astype(np.uint8)
  mask = np.zeros((72, 96), np.uint8)
  mask[5:15, 5:20] = 255
  mask[50:60, 70:90] = 255
  Image.fromarray(rgb).save(tmp_path / "i.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  np.save(tmp_path / "i.npy", rgb.astype(np.float32) / 255)
  hd_args = ("--hd-strategy", strategy, "--hd-trigger-size", 64, "--hd-resize-limit", 48,
             "--hd-crop-margin", 8)
  for ext, image in ((".png", "i.png"), (".npy", "i.npy")):
    out = tmp_path / f"o{ext}"
    assert _run("--checkpoint", model, "--image", tmp_path / image, "--mask", tmp_path / "m.png",
                "--output", out, *hd_args) == 0
    got = np.asarray(Image.open(out)) if ext == ".png" else np.load(out)
    want = rgb if ext == ".png" else rgb.astype(np.float32) / 255
    known = mask == 0
    np.testing.assert_array_equal(got[known], want[known])
    assert got.shape == want.shape


def test_refine_flag(model, tmp_path):
  rng = np.random.default_rng(4)
  rgb = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
  mask = np.zeros((64, 64), np.uint8)
  mask[20:40, 16:44] = 255
  Image.fromarray(rgb).save(tmp_path / "i.png")
  Image.fromarray(mask).save(tmp_path / "m.png")
  assert _run("--checkpoint", model, "--image", tmp_path / "i.png", "--mask", tmp_path / "m.png",
              "--output", tmp_path / "o.png", "--refine", "--refine-iters", 2,
              "--refine-min-side", 32) == 0
  got = np.asarray(Image.open(tmp_path / "o.png"))
  np.testing.assert_array_equal(got[mask == 0], rgb[mask == 0])
  plain = official_predict(model, tmp_path / "i.png", tmp_path / "m.png")
  assert np.any(got != plain)  # the refinement changed the hole
