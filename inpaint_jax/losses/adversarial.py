"""Adversarial losses, feature matching and gradient penalties.

All terms read discriminator outputs from `LossInputs`; logits are
(N, h, w, 1) maps (PatchGAN).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inpaint_jax.losses.recipe import LossInputs, needs_discriminator
from inpaint_jax.registry import LOSSES


def resize_mask_nearest(mask: jax.Array, height: int, width: int) -> jax.Array:
  """PyTorch `F.interpolate(mode='nearest')`: source index floor(dst * in / out).

  `jax.image.resize(..., 'nearest')` samples pixel centres instead, which picks
  different pixels; LaMa resizes the mask to the logit map with PyTorch's rule.

  Args:
    mask: (N, H, W, C).
    height, width: output size.

  Returns:
    (N, height, width, C).
  """
  h, w = mask.shape[1:3]
  rows = (jnp.arange(height) * h) // height
  cols = (jnp.arange(width) * w) // width
  return mask[:, rows][:, :, cols]


@LOSSES.register("nonsaturating_g")
@needs_discriminator
def nonsaturating_g(inputs: LossInputs) -> jax.Array:
  """Generator side of the non-saturating GAN: mean softplus(-D(fake))."""
  logits, _ = inputs.fake
  return jnp.mean(jax.nn.softplus(-logits))


@LOSSES.register("nonsaturating_d")
@needs_discriminator
def nonsaturating_d(inputs: LossInputs, mask_as_fake_target: bool = True):
  """Discriminator side, as LaMa's `NonSaturatingWithR1.discriminator_loss`.

  mean(softplus(-D(real))) + mean(m * softplus(D(fake)) + (1 - m) * softplus(-D(fake))),
  where m is the mask resized (nearest) to the logit map, so the known area of
  the fake image is labelled real when `mask_as_fake_target`. Otherwise the
  whole fake image is labelled fake.
  """
  real_logits, _ = inputs.real
  fake_logits, _ = inputs.fake
  real_loss = jax.nn.softplus(-real_logits)
  fake_loss = jax.nn.softplus(fake_logits)
  if mask_as_fake_target:
    m = resize_mask_nearest(inputs.mask, *fake_logits.shape[1:3])
    fake_loss = m * fake_loss + (1.0 - m) * jax.nn.softplus(-fake_logits)
  return jnp.mean(real_loss) + jnp.mean(fake_loss), {
      "real_logit": jnp.mean(real_logits), "fake_logit": jnp.mean(fake_logits)}


@LOSSES.register("r1_penalty")
@needs_discriminator
def r1_penalty(inputs: LossInputs) -> jax.Array:
  """R1: batch mean of ||d sum(D(real)) / d real||^2 (Mescheder et al. 2018).

  Differentiable with respect to D's parameters (double backprop), like
  LaMa's `make_r1_gp` with `create_graph=True`.
  """
  grad = jax.grad(lambda x: jnp.sum(inputs.disc(x)[0]))(inputs.image)
  return jnp.mean(jnp.sum(jnp.square(grad), axis=(1, 2, 3)))


@LOSSES.register("feature_matching")
@needs_discriminator
def feature_matching(inputs: LossInputs) -> jax.Array:
  """LaMa's discriminator feature matching: mean over layers of MSE(fake, real)."""
  _, fake_feats = inputs.fake
  _, real_feats = inputs.real
  per_layer = [jnp.mean(jnp.square(f - jax.lax.stop_gradient(r)))
               for f, r in zip(fake_feats, real_feats, strict=True)]
  return jnp.mean(jnp.stack(per_layer))


@LOSSES.register("wgan_g")
@needs_discriminator
def wgan_g(inputs: LossInputs) -> jax.Array:
  """WGAN generator loss: -mean D(fake)."""
  return -jnp.mean(inputs.fake[0])


@LOSSES.register("wgan_d")
@needs_discriminator
def wgan_d(inputs: LossInputs):
  """WGAN critic loss: mean D(fake) - mean D(real)."""
  real, fake = jnp.mean(inputs.real[0]), jnp.mean(inputs.fake[0])
  return fake - real, {"wasserstein": real - fake}


@LOSSES.register("gradient_penalty")
@needs_discriminator
def gradient_penalty(inputs: LossInputs) -> jax.Array:
  """WGAN-GP: mean (||grad D(x_hat)|| - 1)^2 at random interpolates.

  x_hat = e * real + (1 - e) * fake with e ~ U[0, 1) per example (Gulrajani et
  al. 2017); the fake is the image D scored as fake, detached.
  """
  n = inputs.image.shape[0]
  eps = jax.random.uniform(inputs.rng, (n, 1, 1, 1))
  fake = jax.lax.stop_gradient(inputs.fake_image)
  x_hat = eps * inputs.image + (1.0 - eps) * fake
  grad = jax.grad(lambda x: jnp.sum(inputs.disc(x)[0]))(x_hat)
  norm = jnp.sqrt(jnp.sum(jnp.square(grad), axis=(1, 2, 3)) + 1e-12)
  return jnp.mean(jnp.square(norm - 1.0))
