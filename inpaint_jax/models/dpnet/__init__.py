"""DPNet: pyramidal convolution, pyramidal attention and dynamic normalisation.

Importing the package registers its generator, discriminator and inference adapter.
"""

from inpaint_jax.models.dpnet import inference, network  # noqa: F401
