"""Model families. Importing this package registers every generator and discriminator."""

from inpaint_jax.models import discriminators, lama, vgg  # noqa: F401  (registration side effects)
