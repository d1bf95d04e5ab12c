"""Fault injection: Ctrl-C, a wrong workdir, broken checkpoints and files, through the commands.

Every test runs the documented commands in a subprocess and checks the exact exit status,
the file or flag named in the message, and that no traceback is printed. One trained tiny
workdir (4 steps, checkpoints at 2 and 4) is shared; tests that break it work on a copy.

A kill during a checkpoint save (SIGKILL while orbax writes; the next run resumes from the
last complete checkpoint, bit for bit) is covered by
tests/test_train.py::test_sigkill_during_async_save_then_resume_equals_uninterrupted; a
second Ctrl-C during a save is covered here.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inpaint_jax import restore, train
from inpaint_jax.weights import model_dir
from tests import helpers

pytestmark = pytest.mark.slow

ENV = {"JAX_PLATFORMS": "cpu", **helpers.FAST_COMPILE_ENV}


def _run(module: str, *args: str, env_extra: dict | None = None
         ) -> subprocess.CompletedProcess:
  """`python -m MODULE ARGS` from the repository root; stdout and stderr together."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=helpers.REPO,
                        env={**os.environ, **ENV, **(env_extra or {})},
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        timeout=600)


def _train(workdir: str, *overrides: str, fault: str | None = None,
           config: str = "configs/lama.py:tiny") -> subprocess.CompletedProcess:
  env = {train.FAULT_ENV: fault} if fault else None
  return _run("inpaint_jax.main", f"--config={config}", f"--workdir={workdir}", *overrides,
              env_extra=env)


def _error_line(out: str) -> str:
  """The command's last line (its error or interrupted line)."""
  return out.strip().splitlines()[-1]


def _assert_clean(r: subprocess.CompletedProcess, status: int) -> None:
  assert r.returncode == status, r.stdout[-3000:]
  assert "Traceback" not in r.stdout, r.stdout[-3000:]
  assert "Exception ignored" not in r.stdout, r.stdout[-3000:]


def _hashes(root: str) -> dict[str, str]:
  """Relative path -> sha256 of every file under `root`."""
  out = {}
  for path in glob.glob(os.path.join(root, "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
  return out


def _assert_equal_states(got: dict, want: dict) -> None:
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
  """An uninterrupted 4-step tiny LaMa run (checkpoints 2 and 4); never modified."""
  workdir = str(tmp_path_factory.mktemp("trained") / "wd")
  r = _train(workdir)
  _assert_clean(r, 0)
  assert helpers.checkpoint_steps(workdir) == [2, 4]
  return workdir


@pytest.fixture
def workdir(trained, tmp_path) -> str:
  """A copy of the trained workdir to break."""
  copy = str(tmp_path / "wd")
  shutil.copytree(trained, copy)
  return copy


# ------------------------------------------------------------------------------------------
# Ctrl-C
# ------------------------------------------------------------------------------------------
def test_sigint_saves_the_step_it_finishes_and_resume_equals_uninterrupted(trained, tmp_path):
  wd = str(tmp_path / "wd")
  # Ctrl-C while step 3 runs (after step 2): step 3 is finished and saved, though it is
  # not a checkpoint step (checkpoint_every_steps=2).
  r = _train(wd, fault="sigint@2")
  _assert_clean(r, 130)
  line = _error_line(r.stdout)
  assert line == (f"interrupted: Ctrl-C at step 3/4; checkpoint saved: "
                  f"{os.path.join(wd, 'checkpoints', '3')}; run the same command to resume")
  assert "press Ctrl-C again to exit at once" in r.stdout
  assert helpers.checkpoint_steps(wd) == [2, 3]
  assert int(helpers.load_state(wd, 3)["step"]) == 3

  r = _train(wd)
  _assert_clean(r, 0)
  assert "at step 3 (data position 3)" in r.stdout, r.stdout[-3000:]
  _assert_equal_states(helpers.load_state(wd, 4), helpers.load_state(trained, 4))


def test_sigint_during_set_up_stops_before_writing_anything(tmp_path):
  wd = tmp_path / "wd"
  p = subprocess.Popen([sys.executable, "-m", "inpaint_jax.main", "--config=configs/lama.py:tiny",
                        f"--workdir={wd}"], cwd=helpers.REPO, env={**os.environ, **ENV},
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in p.stdout:  # the signal handlers are in place once set-up logs this line
    lines.append(line)
    if "global devices" in line:
      p.send_signal(signal.SIGINT)
      break
  out = "".join(lines) + p.communicate(timeout=300)[0]
  assert p.returncode == 130, out[-3000:]
  assert "Traceback" not in out
  assert _error_line(out) == ("interrupted: Ctrl-C during set-up, before the first step: "
                              "nothing was trained or written")
  assert not wd.exists()


def test_second_sigint_exits_at_once_and_the_last_complete_checkpoint_restores(tmp_path):
  wd = str(tmp_path / "wd")
  # Two Ctrl-C right after step 2's asynchronous save started: the second one ends the
  # process at once, possibly while orbax writes step 2.
  r = _train(wd, "--config.checkpoint_every_steps=1", fault="sigint2@2")
  assert r.returncode == -signal.SIGINT, r.stdout[-3000:]  # a shell reports 130
  assert "Traceback" not in r.stdout
  steps = helpers.checkpoint_steps(wd)
  assert steps in ([1], [1, 2]), steps
  for step in steps:
    assert int(helpers.load_state(wd, step)["step"]) == step


# ------------------------------------------------------------------------------------------
# Workdir identity and config history
# ------------------------------------------------------------------------------------------
def test_a_config_with_other_networks_is_refused_before_anything_is_written(workdir):
  before = _hashes(workdir)
  r = _train(workdir, config="configs/dfnet.py:tiny")
  _assert_clean(r, 2)
  line = _error_line(r.stdout)
  assert line.startswith(f"error: --workdir {workdir} holds a run of lama (generator "
                         f"ffc_resnet, "), line
  assert "this config builds dfnet (generator dfnet," in line and "no discriminator" in line
  assert "Use another --workdir" in line and "--config.init_from" in line
  assert len(line) < 2000
  assert _hashes(workdir) == before


def test_no_checkpoint_restores_names_the_workdir_and_the_first_broken_file(workdir):
  for step in (2, 4):
    os.remove(os.path.join(workdir, "checkpoints", str(step), "state", "_METADATA"))
  before = _hashes(workdir)
  r = _train(workdir)
  _assert_clean(r, 2)
  missing = os.path.join(workdir, "checkpoints", "4", "state", "_METADATA")
  assert _error_line(r.stdout) == (
      f"error: --workdir {workdir}: no checkpoint restores (2 tried, newest first); step 4: "
      f"{missing}: missing. Restore the files from a copy, or start afresh with another "
      f"--workdir")
  assert _hashes(workdir) == before


# ------------------------------------------------------------------------------------------
# Broken checkpoints: the newest is skipped, named, and left on disk
# ------------------------------------------------------------------------------------------
def test_truncated_newest_checkpoint_resumes_from_the_previous_one(trained, workdir):
  step4 = os.path.join(workdir, "checkpoints", "4")
  data = glob.glob(os.path.join(step4, "state", "ocdbt.process_0", "d", "*"))
  assert data
  for path in data:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  broken = _hashes(step4)
  config_json = _hashes(workdir)["config.json"]
  r = _train(workdir)
  _assert_clean(r, 0)
  assert ("checkpoint step 4 does not restore, skipped (its files are left as they are): "
          f"{os.path.join(step4, 'state')}: array ") in r.stdout, r.stdout[-3000:]
  assert "at step 2 (data position 2)" in r.stdout
  # Resumed from step 2, the run equals the uninterrupted one; to save step 4 again it
  # moved the broken checkpoint aside, files unchanged.
  _assert_equal_states(helpers.load_state(workdir, 4), helpers.load_state(trained, 4))
  assert f"moved it to {step4}.unrestorable" in r.stdout
  assert _hashes(step4 + ".unrestorable") == broken
  # The same config as the first run: no config file of its own.
  assert _hashes(workdir)["config.json"] == config_json
  assert not glob.glob(os.path.join(workdir, "config.*.json"))


def test_missing_tree_metadata_is_skipped_and_a_config_change_is_kept(workdir):
  os.remove(os.path.join(workdir, "checkpoints", "4", "state", "_METADATA"))
  step4 = _hashes(os.path.join(workdir, "checkpoints", "4"))
  config_json = _hashes(workdir)["config.json"]
  r = _train(workdir, "--config.total_steps=2")
  _assert_clean(r, 0)
  missing = os.path.join(workdir, "checkpoints", "4", "state", "_METADATA")
  assert "checkpoint step 4 does not restore, skipped" in r.stdout
  assert f"{missing}: missing" in r.stdout
  assert "at step 2 (data position 2)" in r.stdout and "Nothing to do" in r.stdout
  assert _hashes(os.path.join(workdir, "checkpoints", "4")) == step4
  # A config that keeps the networks runs; config.json stays the first run's.
  assert "total_steps: 4 -> 2" in r.stdout
  assert _hashes(workdir)["config.json"] == config_json
  assert os.path.isfile(os.path.join(workdir, "config.2.json"))


def test_empty_step_folder_is_skipped(workdir):
  os.makedirs(os.path.join(workdir, "checkpoints", "6"))
  r = _train(workdir)
  _assert_clean(r, 0)
  assert (f"checkpoint step 6 does not restore, skipped (its files are left as they are): "
          f"{os.path.join(workdir, 'checkpoints', '6')}: the folder is empty") in r.stdout
  assert "at step 4 (data position 4)" in r.stdout and "Nothing to do" in r.stdout
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "6"))


# ------------------------------------------------------------------------------------------
# inpaint, export, eval_mode on broken model directories and workdirs
# ------------------------------------------------------------------------------------------
@pytest.fixture
def images(tmp_path) -> tuple[str, str]:
  rng = np.random.default_rng(0)
  Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "im.png")
  mask = np.zeros((32, 32), np.uint8)
  mask[8:20, 8:20] = 255
  Image.fromarray(mask).save(tmp_path / "mask.png")
  return str(tmp_path / "im.png"), str(tmp_path / "mask.png")


def _commands(model: str, tmp_path, images: tuple[str, str]) -> dict[str, list[str]]:
  image, mask = images
  return {
      "inpaint": ["inpaint_jax.inpaint", "--checkpoint", model, "--image", image, "--mask",
                  mask, "--output", str(tmp_path / "out" / "o.png")],
      "export": ["inpaint_jax.export", "--checkpoint", model, "--output",
                 str(tmp_path / "out" / "g.bin"), "--height", "32", "--width", "32"],
      "eval_mode": ["inpaint_jax.eval_mode", "--config=configs/lama.py:tiny",
                    f"--checkpoint={model}", f"--workdir={tmp_path / 'out'}",
                    "--metrics=psnr", "--n_images=2"],
  }


def test_model_directory_with_broken_config_json(trained, tmp_path, images):
  md = str(tmp_path / "md")
  loaded = restore.load(trained)
  model_dir.save(md, loaded.config, loaded.variables, family="lama")
  with open(os.path.join(md, "config.json"), "w") as f:
    f.write("{\n")
  for name, cmd in _commands(md, tmp_path, images).items():
    r = _run(*cmd)
    _assert_clean(r, 2)
    line = _error_line(r.stdout)
    assert f"{os.path.join(md, 'config.json')}: not valid JSON" in line, (name, line)
    assert not os.path.exists(tmp_path / "out"), name


def test_workdir_with_truncated_latest_checkpoint_for_inference(workdir, tmp_path, images):
  state = os.path.join(workdir, "checkpoints", "4", "state")
  for path in glob.glob(os.path.join(state, "ocdbt.process_0", "d", "*")):
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  cmd = _commands(workdir, tmp_path, images)["inpaint"]
  r = _run(*cmd)
  _assert_clean(r, 2)
  line = _error_line(r.stdout)
  assert line.startswith(f"error: --checkpoint {workdir}: the latest checkpoint (step 4) does "
                         f"not restore: {state}: array "), line


# ------------------------------------------------------------------------------------------
# User errors of the commands
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["inpaint_jax.main", "inpaint_jax.eval_mode"])
def test_missing_config_file_is_named(module, tmp_path):
  wd = tmp_path / "wd"
  r = _run(module, "--config=configs/lamma.py:demo", f"--workdir={wd}")
  _assert_clean(r, 2)
  assert _error_line(r.stdout).startswith(
      "error: --config=configs/lamma.py:demo: no such config file 'configs/lamma.py'")
  assert not wd.exists()


def test_eval_mode_on_a_missing_workdir_creates_nothing(tmp_path):
  wd = tmp_path / "missing"
  r = _run("inpaint_jax.eval_mode", "--config=configs/lama.py:tiny", f"--workdir={wd}")
  _assert_clean(r, 2)
  assert _error_line(r.stdout).startswith(f"error: --workdir '{wd}': no checkpoint there")
  assert not wd.exists()


def test_output_under_a_file_is_refused_before_loading(trained, tmp_path, images):
  blocker = tmp_path / "file"
  blocker.write_text("")
  image, mask = images
  r = _run("inpaint_jax.inpaint", "--checkpoint", trained, "--image", image, "--mask", mask,
           "--output", str(blocker / "o.png"))
  _assert_clean(r, 2)
  assert _error_line(r.stdout) == (f"error: --output {blocker / 'o.png'}: {blocker} is a "
                                   f"file, not a folder")


def test_wrong_flag_type_is_one_line(tmp_path):
  r = _run("inpaint_jax.eval_mode", "--config=configs/lama.py:tiny", f"--workdir={tmp_path}",
           "--n_images=abc")
  _assert_clean(r, 2)
  assert _error_line(r.stdout) == ("error: flag --n_images=abc: invalid literal for int() "
                                   "with base 10: 'abc'")
