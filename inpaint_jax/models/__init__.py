"""Model families. Importing this package registers every generator and discriminator."""

# Registration side effects.
from inpaint_jax.models import dfnet, dgfnet, discriminators, lama, resnet, rfr, vgg  # noqa: F401
