"""Model families. Importing this package registers every generator and discriminator."""

# Registration side effects.
from inpaint_jax.models import (
    dcf,  # noqa: F401
    dfnet,  # noqa: F401
    dgfnet,  # noqa: F401
    discriminators,  # noqa: F401
    dpnet,  # noqa: F401
    lama,  # noqa: F401
    resnet,  # noqa: F401
    rfr,  # noqa: F401
    vgg,  # noqa: F401
)
