"""LaMa (Suvorov et al., WACV 2022): Fourier-convolution generator, refinement, the study's masks.

Importing the package registers its generator, inference adapter, converter and mask generators.
"""

from inpaint_jax.models.lama import convert, inference, masks, network  # noqa: F401
