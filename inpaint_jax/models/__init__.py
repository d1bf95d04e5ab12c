"""Model families. Importing this package registers every family's parts.

Each family is one sub-package (network, inference adapter, converter, its own masks); adding
a family is one folder and one line here. Shared layers sit beside them (`layers`, `norm`,
`spectral_norm`, `partial_conv`, ...), the family contract in `api`.
"""

# Registration side effects: generators, discriminators, adapters, converters, masks.
from inpaint_jax.models import (  # noqa: F401
    dcf,
    dfnet,
    dgfnet,
    discriminators,
    dpnet,
    lama,
    rfr,
)
