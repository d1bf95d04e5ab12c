"""Loss terms, registered by name in `inpaint_jax.registry.LOSSES`.

Importing this package registers every term; `recipe.evaluate` combines them.
"""

from inpaint_jax.losses import adversarial, boundary, frequency, perceptual, pixel, style  # noqa: F401  (registration)
from inpaint_jax.losses.recipe import LossInputs, evaluate

__all__ = ["LossInputs", "evaluate"]
