"""DGFNet: an RFR-Net coarse branch, an RTV texture branch and DPFM fusion.

Importing the package registers its generator and inference adapter.
"""

from inpaint_jax.models.dgfnet import inference, network  # noqa: F401
