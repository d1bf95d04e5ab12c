"""Frozen networks that losses and metrics read: VGG, ResNet-50, FID Inception.

Each network owns its weight keys and its loader; importing this package registers the
backbones that loss configs name (`registry.BACKBONES`).
"""

from inpaint_jax.backbones import resnet, vgg  # noqa: F401  (registration)
