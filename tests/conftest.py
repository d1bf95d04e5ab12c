"""Test setup: CPU only, absl flags parsed (absl.logging needs it), shared fixtures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="module")
def fast_compile():
  """In-process training runs compile like the subprocess ones (helpers.FAST_COMPILE_ENV).

  XLA's optimisation passes cost more than they save on the tests' tiny models.
  """
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)
