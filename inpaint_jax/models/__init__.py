"""Model families. Importing this package registers every generator and discriminator."""

# Registration side effects.
from inpaint_jax.models import dfnet, discriminators, dpnet, lama, resnet, vgg  # noqa: F401
