"""The command line: summary counts, config validation and clear errors."""

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest
from PIL import Image

from tests import helpers


@pytest.mark.parametrize("variant,gen,disc", [("fourier", 27_048_835, 6_962_369),
                                              ("big", 50_975_875, 6_962_369)])
def test_summary_prints_published_parameter_counts(variant, gen, disc, tmp_path):
  r = helpers.run_main([f"--config=configs/lama.py:{variant}", "--mode=summary",
                        f"--workdir={tmp_path}"])
  assert r.returncode == 0, r.stderr[-3000:]
  assert re.search(rf"^generator_params: {gen}$", r.stdout, re.M), r.stdout[-2000:]
  assert re.search(rf"^discriminator_params: {disc}$", r.stdout, re.M)


@pytest.mark.parametrize("args,message", [
    (["--config.total_step=3"], "total_step"),
    (["--config.total_steps=abc"], "total_steps"),
    (["--config.generator.nblocks=3", "--mode=summary"], "nblocks"),
    (["--config=configs/lama.py:huge"],
     "unknown variant 'huge'; accepted: fourier, big, demo, tiny"),
    (["--config.data.source=folder", "--config.data.folder=/does/not/exist"], "data.folder"),
    (["--config.data.source=nope"], "data.source"),
    (["--config.masks.kind=nope"], "masks.kind"),
    (["--config.batch_size=0"], "batch_size"),
    (["--config.discriminator.name=none"], "needs a discriminator"),
    (["--config.optim.g.schedule=linear"], "optim.g.schedule"),
    (["--config.batchnorm.group_size=3"], "batchnorm.group_size"),
    (["--config.train.critic_batches=some"], "train.critic_batches"),
    (["--config.data.augment=heavy"], "data.augment"),
])
def test_bad_config_gives_a_clear_error(args, message, tmp_path):
  base = ["--config=configs/lama.py:demo", f"--workdir={tmp_path}"]
  if any(a.startswith("--config=") for a in args):
    base = base[1:]
  r = helpers.run_main([*base, *args], timeout=300)
  assert r.returncode == 2, r.stderr[-3000:]
  assert message in r.stderr, r.stderr[-3000:]
  assert "Traceback" not in r.stderr, r.stderr[-3000:]


def test_image_smaller_than_crop_is_named(tmp_path):
  folder = tmp_path / "imgs"
  folder.mkdir()
  Image.new("RGB", (20, 20), (10, 20, 30)).save(folder / "tiny.png")
  r = helpers.run_main(["--config=configs/lama.py:demo", f"--workdir={tmp_path / 'wd'}",
                        "--config.data.source=folder", f"--config.data.folder={folder}"])
  assert r.returncode == 2
  assert "Traceback" not in r.stderr
  assert "tiny.png" in r.stderr and "small_images" in r.stderr, r.stderr[-3000:]


def test_summary_without_discriminator_prints_zero(tmp_path):
  r = helpers.run_main(["--config=configs/lama.py:tiny", "--mode=summary", f"--workdir={tmp_path}",
                        "--config.discriminator.name=none",
                        "--config.losses.generator.adv.weight=0",
                        "--config.losses.generator.fm.weight=0",
                        "--config.losses.discriminator.adv.weight=0",
                        "--config.losses.discriminator.r1.weight=0"])
  assert r.returncode == 0, r.stderr[-3000:]
  assert re.search(r"^discriminator_params: 0$", r.stdout, re.M), r.stdout[-2000:]


def test_readme_quick_start_and_ci_run_the_same_test_command():
  readme = open(os.path.join(helpers.REPO, "README.md")).read()
  block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
  lines = [x for x in block.strip().splitlines() if x.strip() and not x.startswith("#")]
  assert len(lines) == 2
  ci = open(os.path.join(helpers.REPO, ".ci", "run")).read()
  assert lines[1] in ci.splitlines()
  assert "inpaint_jax.main --config=configs/lama.py:demo" in lines[0]


# ------------------------------------------------------------------------------------------
# One command-line convention: --snake_case flags with --dash-case aliases, help, errors.
# ------------------------------------------------------------------------------------------
def _argparse_parsers():
  """{command: its parser} of the argparse commands that build one up front."""
  from inpaint_jax import evaluate, export, inpaint, masks  # pylint: disable=g-import-not-at-top

  return {"inpaint": inpaint.make_parser(), "export": export.make_parser(),
          "evaluate": evaluate.make_parser(), "masks": masks.make_parser()}


def test_snake_and_dash_spellings_are_one_flag():
  from inpaint_jax import evaluate, inpaint  # pylint: disable=g-import-not-at-top

  p = inpaint.make_parser()
  for argv in (["--input-dir", "a", "--output-dir", "b", "--image-suffix", ".jpg",
                "--hd-strategy", "crop", "--no-progress", "--refine-iters", "3"],
               ["--input_dir", "a", "--output_dir=b", "--image_suffix", ".jpg",
                "--hd_strategy=crop", "--no_progress", "--refine_iters", "3"]):
    a = p.parse_args(["--checkpoint", "m", *argv])
    assert (a.input_dir, a.output_dir, a.image_suffix, a.hd_strategy, a.no_progress,
            a.refine_iters) == ("a", "b", ".jpg", "crop", True, 3), argv
  # Abbreviations still work (both spellings of one flag are one match).
  assert p.parse_args(["--checkpoint", "m", "--input", "x"]).input_dir == "x"
  e = evaluate.make_parser()
  for sep in ("-", "_"):
    a = e.parse_args(["--targets", "t", "--output", "o.json", f"--lpips{sep}weights", "w.npz",
                      f"--inception{sep}weights", "i.npz", f"--batch{sep}size", "4"])
    assert (a.lpips_weights, a.inception_weights, a.batch_size) == ("w.npz", "i.npz", 4)


def test_help_shows_snake_case_flags_with_help_and_defaults():
  for name, p in _argparse_parsers().items():
    text = p.format_help()
    assert "usage: python -m inpaint_jax." in text and "examples:" in text, name
    for action in p._actions:  # pylint: disable=protected-access
      assert action.help, (name, action.option_strings)
      for s in action.option_strings:
        if s.startswith("--") and "-" in s[2:]:
          assert s not in text, (name, s)     # the alias is hidden
      if (action.default is not None and action.default is not False and action.default != ""
          and action.option_strings != ["-h", "--help"]):
        assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)
  text = _argparse_parsers()["inpaint"].format_help()
  assert "--input_dir DIR" in text and "--hd_strategy" in text


def test_bad_flag_is_one_line_exit_2_naming_the_canonical_flag(capsys):
  from inpaint_jax import errors, inpaint  # pylint: disable=g-import-not-at-top

  with pytest.raises(SystemExit) as exc:
    inpaint.main(["--checkpoint", "m", "--hd-strategy", "nope"])
  err = capsys.readouterr().err.strip().splitlines()
  assert exc.value.code == 2 and len(err) == 1, err
  assert err[0].startswith("error: argument --hd_strategy: invalid choice: 'nope'"), err
  assert err[0].endswith("(see --help)") and "--hd-strategy" not in err[0]
  with pytest.raises(TypeError, match="needs help text"):
    errors.ArgumentParser("p", "d").add_argument("--x")


def test_bench_and_converter_commands_use_the_convention(capsys):
  from inpaint_jax import inference_bench  # pylint: disable=g-import-not-at-top
  from inpaint_jax.convert import metric_commands, metric_nets  # pylint: disable=g-import-not-at-top
  from inpaint_jax.metrics import bench  # pylint: disable=g-import-not-at-top

  for fn, needle in ((bench.main, "--repeats N"), (inference_bench.main, "--what"),
                     (metric_nets.convert_lpips, "--vgg16 FILE"),
                     (metric_nets.convert_inception, "--weights FILE"),
                     (lambda a: metric_commands.convert_backbone_main("vgg16", a),
                      "--checkpoint FILE")):
    with pytest.raises(SystemExit) as exc:
      fn(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: python -m inpaint_jax."), out
    assert needle in out and "example" in out, out
  r = subprocess.run([sys.executable, "-m", "inpaint_jax.data.masks_bench", "--n", "x"],
                     cwd=helpers.REPO, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [
      "error: argument --n: invalid int value: 'x' (see --help)"], r.stderr


def test_convert_help_per_converter(capsys):
  from inpaint_jax.convert import __main__ as convert_cli  # pylint: disable=g-import-not-at-top

  convert_cli.main(["--help"])
  out = capsys.readouterr().out
  assert "converters:" in out and all(f"  {n} " in out for n in ("lama", "dfnet", "lpips"))
  for argv in (["lama", "--help"], ["lama", "--checkpoint", "x", "-h"], ["help", "lama"]):
    convert_cli.main(argv)
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m inpaint_jax.convert lama --checkpoint PATH"), argv
    assert "official LaMa" in out and "--config.a.b=VALUE" in out and "--overwrite" in out
  convert_cli.main(["dfnet", "--help"])
  assert "--channel_order bgr|rgb" in capsys.readouterr().out
  r = subprocess.run([sys.executable, "-m", "inpaint_jax.convert", "lama", "--help"],
                     cwd=helpers.REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and "official LaMa" in r.stdout, r.stderr[-2000:]


# ------------------------------------------------------------------------------------------
# Entry points and packaged configs.
# ------------------------------------------------------------------------------------------
def test_package_overview_and_dispatch(tmp_path):
  from inpaint_jax import __main__ as dispatcher  # pylint: disable=g-import-not-at-top

  r = subprocess.run([sys.executable, "-m", "inpaint_jax"], cwd=tmp_path, capture_output=True,
                     text=True, timeout=120)
  assert r.returncode == 0, r.stderr
  for name, command in dispatcher.COMMANDS.items():
    assert re.search(rf"^  {name} +\S", r.stdout, re.M), name
    assert f"python -m {command.module} " in r.stdout, name
  r = subprocess.run([sys.executable, "-m", "inpaint_jax", "masks", "--preset", "square_20_30",
                      "--n", "2", "--size", "16", "--output", str(tmp_path / "m")], cwd=tmp_path,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0 and r.stdout.startswith("wrote 2 masks"), r.stderr
  r = subprocess.run([sys.executable, "-m", "inpaint_jax", "nope"], cwd=tmp_path,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and r.stderr.startswith("error: unknown command 'nope'")


def test_absl_command_through_the_dispatcher_with_a_config_name(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  r = subprocess.run([sys.executable, "-m", "inpaint_jax", "train", "--config=lama:tiny",
                      f"--workdir={tmp_path / 'w'}", "--config.total_steps=abc"],
                     cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 2 and "total_steps" in r.stderr and "Traceback" not in r.stderr, (
      r.stderr[-3000:])
  r = subprocess.run([sys.executable, "-m", "inpaint_jax.main", "--config=nope:demo",
                      f"--workdir={tmp_path / 'w'}"], cwd=tmp_path, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
  assert r.stderr.strip().splitlines()[-1].startswith(
      "error: --config=nope:demo: no such config file 'nope'"), r.stderr[-3000:]
  assert "lama, lama_study" in r.stderr


CONFIG_NAMES = ("lama", "lama_study", "dfnet", "rfr", "dgfnet", "dcf", "dpnet")


def test_configs_load_by_name_from_any_directory(tmp_path):
  code = textwrap.dedent(f"""
      import json
      import inpaint_jax.configs
      from inpaint_jax import config_lib
      out = {{n: config_lib.load_config_file(n).generator.name for n in {CONFIG_NAMES!r}}}
      out["lama:demo"] = config_lib.load_config_file("lama:demo").variant
      out["file"] = config_lib.load_config_file("configs/lama.py:tiny").variant
      print(json.dumps(out))
  """)
  r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  got = json.loads(r.stdout.strip().splitlines()[-1])
  assert set(got) == {*CONFIG_NAMES, "lama:demo", "file"} and all(got.values())
  assert got["lama:demo"] == "demo" and got["file"] == "tiny"
  r = subprocess.run([sys.executable, "-m", "inpaint_jax.main", "--config=lama:tiny",
                      "--mode=summary", f"--workdir={tmp_path}"], cwd=tmp_path,
                     env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert re.search(r"^generator_params: \d+$", r.stdout, re.M), r.stdout[-2000:]


def test_pyproject_lists_every_package():
  import setuptools  # pylint: disable=g-import-not-at-top

  with open(os.path.join(helpers.REPO, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)
  listed = set(project["tool"]["setuptools"]["packages"])
  found = set(setuptools.find_packages(helpers.REPO, include=["inpaint_jax*"]))
  assert listed == found | {"inpaint_jax.configs"}
  assert project["tool"]["setuptools"]["package-dir"] == {"inpaint_jax.configs": "configs"}
  assert project["project"]["scripts"] == {"inpaint-jax": "inpaint_jax.__main__:main"}
