"""RFR-Net (Li et al., CVPR 2020): recurrent feature reasoning.

Importing the package registers its generator, inference adapter and converter.
"""

from inpaint_jax.models.rfr import convert, inference, network  # noqa: F401
