"""The package's XLA CPU defaults: which flags, when they are left alone, their effect."""

import os
import subprocess
import sys

import pytest

from inpaint_jax import xla_defaults

FLAG = f"{xla_defaults.YNN_FLAG}={xla_defaults.YNN_DEFAULT}"


def test_adds_the_flag_to_an_empty_or_existing_flag_list():
  assert xla_defaults.cpu_flags({}, "0.10.2") == FLAG
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  assert xla_defaults.cpu_flags(env, "0.10.0") == (
      "--xla_force_host_platform_device_count=4 " + FLAG)


def test_leaves_the_flags_alone_when_asked_or_unsure():
  # The user chose a value for the flag.
  env = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
  assert xla_defaults.cpu_flags(env, "0.10.2") is None
  # Opt-out.
  for off in ("0", "false", "OFF"):
    assert xla_defaults.cpu_flags({xla_defaults.OPT_OUT: off}, "0.10.2") is None
  # A jaxlib whose XLA may not know the flag (an unknown flag aborts XLA).
  assert xla_defaults.cpu_flags({}, "0.11.0") is None
  assert xla_defaults.cpu_flags({}, None) is None


def test_apply_writes_the_environment_mapping():
  env = {}
  xla_defaults.apply(env)
  if xla_defaults.cpu_flags({}, xla_defaults._jaxlib_version()) is not None:
    assert env["XLA_FLAGS"] == FLAG
  else:
    assert "XLA_FLAGS" not in env


_CHILD = """
import inpaint_jax, jax, jax.numpy as jnp
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID',
                                               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
args = jnp.ones((1, 34, 34, 128)), jnp.ones((3, 3, 128, 128))
hlo = jax.jit(conv).lower(*args).compile().as_text()
print('YNN' if 'ynn_fusion' in hlo else 'XLA')
"""


def _conv_backend(**env_extra) -> str:
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, JAX_PLATFORMS="cpu", **env_extra,
             PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=repo,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout.strip().splitlines()[-1]


def test_importing_the_package_keeps_3x3_convs_on_xla_and_the_opt_out_restores_ynnpack():
  if xla_defaults.cpu_flags({}, xla_defaults._jaxlib_version()) is None:
    pytest.skip("untested jaxlib: the package sets no flag")
  assert _conv_backend() == "XLA"
  assert _conv_backend(**{xla_defaults.OPT_OUT: "0"}) == "YNN"
