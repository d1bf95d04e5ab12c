"""DCF: dynamic coarse-to-fine inpainting with attention fusion.

Importing the package registers its generator, discriminator, inference adapter, converter and
masks.
"""

from inpaint_jax.models.dcf import convert, inference, masks, network  # noqa: F401
