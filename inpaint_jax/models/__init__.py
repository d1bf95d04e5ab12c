"""Model families. Importing this package registers every generator and discriminator."""

from inpaint_jax.models import dfnet, discriminators, lama  # noqa: F401  (registration side effects)
