"""Training data: image sources, augmentations, mask generators and the input pipeline.

Importing this package registers every source, augmentation and generic mask generator;
family-specific mask generators live with their family under `inpaint_jax.models`.
"""

from inpaint_jax.data import augment, masks, sources  # noqa: F401  (registration)
