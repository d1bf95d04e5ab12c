"""The `convert` command: published PyTorch weights to inpaint_jax model directories.

Family converters register themselves from their family folder; the converters of the
frozen networks the losses and metrics use (LPIPS, Inception, backbones) register in
`metric_commands`. Importing this package registers all of them.
"""

from inpaint_jax import models  # noqa: F401  (registration)
from inpaint_jax.convert import metric_commands  # noqa: F401  (registration)
