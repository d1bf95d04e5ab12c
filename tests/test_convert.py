"""`python -m inpaint_jax.convert`: LaMa checkpoints -> model directories, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import helpers
import jax
import lama_fixtures as lf
import numpy as np
import pytest

from inpaint_jax import restore
from inpaint_jax.convert import __main__ as convert_cli
from inpaint_jax.weights import model_dir

jax.config.update("jax_disable_most_optimizations", True)


def _same(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


def _convert(argv):
  convert_cli.run(argv)
  return restore.load(argv[argv.index("--output") + 1])


@pytest.mark.parametrize("gen", [
    lf.ODD_GENERATOR,
    # Reached max_features, ratio 0.5, LFU.
    dict(ngf=8, n_downsampling=2, n_blocks=1, ratio_g=0.5, enable_lfu=True, max_features=16),
])
def test_lightning_round_trip(tmp_path, gen):
  config = helpers.tiny_config(**{f"generator.{k}": v for k, v in gen.items()})
  g, d = lf.random_lama_variables(config)
  ckpt = tmp_path / "last.ckpt"
  lf.save_lightning_checkpoint(str(ckpt), lf.official_state_dict(g, d))
  md = _convert(["lama", "--checkpoint", str(ckpt), "--output", str(tmp_path / "md"),
                 "--config=configs/lama.py:tiny"])
  for k, v in gen.items():
    assert md.config.generator[k] == v, k
  assert md.config.discriminator.ndf == config.discriminator.ndf
  assert md.config.discriminator.n_layers == config.discriminator.n_layers
  assert _same(md.variables["g"], g) and _same(md.variables["d"], d)
  assert md.manifest["family"] == "lama"
  assert md.manifest["source"]["sha256"] == model_dir.sha256_of(str(ckpt))
  assert md.manifest["ignored_key_prefixes"] == ["loss_resnet_pl", "val_evaluator"]
  # The directory rebuilds the same generator.
  cfg, g_model, variables = restore.load_generator(str(tmp_path / "md"))
  assert _same(variables, g)
  assert cfg.generator.name == "ffc_resnet" and g_model.ngf == gen["ngf"]


def test_released_folder_and_default_config(tmp_path):
  config = helpers.tiny_config(**{f"generator.{k}": v for k, v in lf.ODD_GENERATOR.items()})
  g, _ = lf.random_lama_variables(config)
  folder = tmp_path / "my-lama"
  (folder / "models").mkdir(parents=True)
  lf.save_lightning_checkpoint(str(folder / "models" / "best.ckpt"),
                               lf.official_state_dict(g, None))
  (folder / "config.yaml").write_text(
      "generator:\n  kind: ffc_resnet\n  ngf: 6\n  add_out_act: sigmoid\n"
      "training_model:\n  concat_mask: true\n")
  md = _convert(["lama", "--checkpoint", str(folder), "--output", str(tmp_path / "md"),
                 "--config.data.image_size=48"])
  assert md.config.variant == "fourier"           # configs/lama.py chosen by block count
  assert md.config.data.image_size == 48          # override applied to the converter's config
  assert md.config.generator.ngf == 6 and "d" not in md.variables
  assert md.manifest["official_config"]["generator"]["kind"] == "ffc_resnet"
  assert md.manifest["source"]["file"].endswith(os.path.join("models", "best.ckpt"))


def test_parse_args_generic_options():
  common, overrides, others = convert_cli.parse_args(
      ["--checkpoint", "a.pth", "--output=o", "--channel-order", "bgr", "--config.a.b=3",
       "--overwrite", "--some_flag=x"])
  assert common == {"checkpoint": "a.pth", "output": "o", "overwrite": "true"}
  assert overrides == {"a.b": "3"}
  assert others == {"channel_order": "bgr", "some_flag": "x"}


def _cli(*args):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}
  return subprocess.run([sys.executable, "-m", "inpaint_jax.convert", *args], cwd=helpers.REPO,
                        env=env, capture_output=True, text=True, timeout=120)


def test_cli_converts_and_refuses(tmp_path, capsys):
  config = helpers.tiny_config()
  g, d = lf.random_lama_variables(config)
  ckpt = tmp_path / "t.ckpt"
  lf.save_lightning_checkpoint(str(ckpt), lf.official_state_dict(g, d))
  out = tmp_path / "md"
  convert_cli.main(["lama", "--checkpoint", str(ckpt), "--output", str(out)])
  assert capsys.readouterr().out.strip() == f"wrote model directory {out}"
  manifest = json.loads((out / "manifest.json").read_text())
  assert sorted(manifest["nets"]) == ["d", "g"]
  empty = tmp_path / "empty.ckpt"
  empty.write_bytes(b"")
  text = tmp_path / "notes.ckpt"
  text.write_text("hello")
  cases = [
      (("lama", "--checkpoint", str(tmp_path / "nope.ckpt"), "--output", "x"), "no such file"),
      (("dfnetx", "--checkpoint", str(ckpt), "--output", "x"), "unknown converter"),
      (("lama", "--checkpoint", str(ckpt), "--output", str(out)), "not empty"),
      (("lama", "--checkpoint", str(ckpt), "--output", "x", "--channel-order", "bgr"),
       "--channel-order is not a flag of converter 'lama'"),
      (("lama", "--checkpoint", str(ckpt), "--output", "x", "--config.generator.nope=1"),
       "unknown config field generator.nope"),
      (("lama", "--checkpoint", str(empty), "--output", "x"), "empty"),
      (("lama", "--checkpoint", str(text), "--output", "x"), str(text)),
      (("lama", "--output", "x"), "--checkpoint is required"),
  ]
  # One refusal through a real process (exit status, no traceback), the rest in-process.
  r = _cli(*cases[0][0])
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [
      f"error: --checkpoint {tmp_path / 'nope.ckpt'}: no such file or folder"], r.stderr
  for args, needle in cases[1:]:
    with pytest.raises(SystemExit) as exc:
      convert_cli.main(list(args))
    assert exc.value.code == 2, args
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, lines)


def test_lightning_file_loads_in_torch(tmp_path):
  torch = pytest.importorskip("torch", reason="torch not installed: torch.load check skipped")
  config = helpers.tiny_config()
  g, d = lf.random_lama_variables(config)
  sd = lf.official_state_dict(g, d)
  lf.save_lightning_checkpoint(str(tmp_path / "t.ckpt"), sd)
  loaded = torch.load(str(tmp_path / "t.ckpt"), weights_only=True)
  assert loaded["global_step"] == 1234
  for k, v in sd.items():
    np.testing.assert_array_equal(loaded["state_dict"][k].numpy(), v)


def test_command_converters_get_their_arguments(tmp_path, capsys):
  with pytest.raises(SystemExit) as exc:
    convert_cli.main(["inception", "--weights", str(tmp_path / "nope.pth"), "--output",
                      str(tmp_path / "x.npz")])
  assert exc.value.code == 2 and "nope.pth" in capsys.readouterr().err
