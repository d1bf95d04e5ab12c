"""The command line: summary counts, config validation and clear errors."""

import os
import re

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
