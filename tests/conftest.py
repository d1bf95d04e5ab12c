"""Test setup: CPU only, absl flags parsed (absl.logging needs it), shared fixtures.

Compiled programs are shared by every test of a session through a JAX persistent
compilation cache: most of the suite's time is XLA compiling the same small programs (the
tiny configs' train step, initialiser and sample programs) in many tests, in-process and in
the subprocess runs. The cache is a fresh temporary directory per session (outside the
repository, removed at the end), created by the controlling process before anything is
compiled and handed to the xdist workers and to every subprocess through the environment
(`JAX_COMPILATION_CACHE_DIR`, ...), which they all inherit. A cache hit loads the very
executable the compiler produced for the same program and compile options, so results are
bit-for-bit those of a fresh compile.
"""

import importlib.metadata
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# XLA's CPU fusion emitters (the MLIR ones) take more than half of the compile time of the
# tests' small programs; the classic loop emitters compile them 2-3x faster. Only for the
# jaxlib minor version this was measured on: XLA aborts on a flag it does not know.
_FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"
if (importlib.metadata.version("jaxlib").startswith("0.10.")
    and "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", "")):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE_FLAG}".strip()

# Set before jax is imported: jax reads its config defaults from the environment then.
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
# The pid of the session's controlling process, which made the directory; set means this
# process is one of its xdist workers and shares the directory.
_OWNER_ENV = "INPAINT_JAX_TEST_CACHE_OWNER"
if not (os.environ.get(_OWNER_ENV) and os.path.isdir(os.environ.get(_CACHE_ENV, ""))):
  os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="inpaint_jax_test_xla_cache_")
  os.environ[_OWNER_ENV] = str(os.getpid())
# Cache every program, however quick its compile or small its executable.
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()


def pytest_unconfigure(config):
  """The process that created the session's cache directory removes it."""
  del config
  if os.environ.get(_OWNER_ENV) == str(os.getpid()):
    shutil.rmtree(os.environ[_CACHE_ENV], ignore_errors=True)


@pytest.fixture(scope="module")
def fast_compile():
  """In-process training runs compile like the subprocess ones (helpers.FAST_COMPILE_ENV).

  XLA's optimisation passes cost more than they save on the tiny models.
  """
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)
