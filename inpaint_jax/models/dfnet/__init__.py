"""DFNet (Hong et al., 2019): fusion blocks with multi-scale constraints.

Importing the package registers its generator, inference adapter, converter and masks.
"""

from inpaint_jax.models.dfnet import convert, inference, masks, network  # noqa: F401
