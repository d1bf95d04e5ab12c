"""inpaint_jax: deep image inpainting in JAX/Flax."""

from inpaint_jax import xla_defaults as _xla_defaults

# Before any JAX backend exists: XLA reads its flags once, at backend creation.
_xla_defaults.apply()

__version__ = "0.1.0"
