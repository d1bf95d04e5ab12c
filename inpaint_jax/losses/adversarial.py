"""Adversarial losses, feature matching and gradient penalties.

All terms read discriminator outputs from `LossInputs`; logits are
(N, h, w, 1) maps (PatchGAN).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from inpaint_jax.losses.pixel import abs_l1
from inpaint_jax.losses.recipe import LossInputs, needs_discriminator, resize_bilinear
from inpaint_jax.registry import LOSSES

_DISTANCES = {"mse": jnp.square, "l1": abs_l1}


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


def _logit_mask(mask: jax.Array, logits: jax.Array, mask_resize: str, term: str) -> jax.Array:
  """The mask resized to the logit map: `nearest` (LaMa) or `bilinear` (half-pixel)."""
  h, w = logits.shape[1:3]
  if mask_resize == "nearest":
    return resize_mask_nearest(mask, h, w)
  if mask_resize == "bilinear":
    return resize_bilinear(mask, h, w)
  raise ValueError(f"{term}: mask_resize must be nearest or bilinear, got {mask_resize!r}")


@LOSSES.register("nonsaturating_g")
@needs_discriminator
def nonsaturating_g(inputs: LossInputs, region: str = "all",
                    mask_resize: str = "nearest") -> jax.Array:
  """Generator side of the non-saturating GAN: mean softplus(-D(fake)).

  Args:
    inputs: the loss inputs.
    region: all (LaMa) | hole: weight each logit with the mask resized to the
      logit map (a mean over all logits, so the known area counts as zero).
    mask_resize: how the mask is resized for `region="hole"`: nearest | bilinear.
  """
  logits, _ = inputs.fake
  loss = jax.nn.softplus(-logits)
  if region == "hole":
    loss = loss * _logit_mask(inputs.mask, logits, mask_resize, "nonsaturating_g")
  elif region != "all":
    raise ValueError(f"nonsaturating_g: region must be all or hole, got {region!r}")
  return jnp.mean(loss)


@LOSSES.register("nonsaturating_d")
@needs_discriminator
def nonsaturating_d(inputs: LossInputs, mask_as_fake_target: bool = True,
                    mask_resize: str = "nearest"):
  """Discriminator side, as LaMa's `NonSaturatingWithR1.discriminator_loss`.

  mean(softplus(-D(real))) + mean(m * softplus(D(fake)) + (1 - m) * softplus(-D(fake))),
  where m is the mask resized (nearest) to the logit map, so the known area of
  the fake image is labelled real when `mask_as_fake_target`. Otherwise the
  whole fake image is labelled fake. `mask_resize`: nearest (LaMa) | bilinear.
  """
  real_logits, _ = inputs.real
  fake_logits, _ = inputs.fake
  real_loss = jax.nn.softplus(-real_logits)
  fake_loss = jax.nn.softplus(fake_logits)
  if mask_as_fake_target:
    m = _logit_mask(inputs.mask, fake_logits, mask_resize, "nonsaturating_d")
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
def feature_matching(inputs: LossInputs, distance: str = "mse",
                     layers: Sequence[int] | None = None) -> jax.Array:
  """Discriminator feature matching: mean over layers of distance(feat(fake), feat(real)).

  LaMa: MSE over all the feature maps D returns, no mask. Works with any
  discriminator that returns a list of feature maps; the real features are
  detached.

  Args:
    inputs: the loss inputs.
    distance: mse | l1 (the per-layer mean of the squared / absolute difference).
    layers: indices of the feature maps to use (None: all).
  """
  _, fake_feats = inputs.fake
  _, real_feats = inputs.real
  if len(fake_feats) == 0:
    raise ValueError("feature_matching: the discriminator returns no feature maps")
  dist = _DISTANCES.get(distance)
  if dist is None:
    raise ValueError(f"feature_matching: distance must be one of {', '.join(_DISTANCES)}, "
                     f"got {distance!r}")
  pairs = list(zip(fake_feats, real_feats, strict=True))
  if layers is not None:
    pairs = [pairs[int(i)] for i in layers]
  per_layer = [jnp.mean(dist(f - jax.lax.stop_gradient(r))) for f, r in pairs]
  return jnp.mean(jnp.stack(per_layer))


@LOSSES.register("wgan_g")
@needs_discriminator
def wgan_g(inputs: LossInputs) -> jax.Array:
  """WGAN and hinge-GAN generator loss: -mean D(fake)."""
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


HINGE_G_FORMS = ("mean", "relu")


@LOSSES.register("hinge_g")
@needs_discriminator
def hinge_g(inputs: LossInputs, form: str = "mean") -> jax.Array:
  """Generator side of the hinge GAN.

  Args:
    inputs: the loss inputs; `inputs.fake[0]` holds the (N, h, w, 1) logits D(fake).
    form: mean: -mean D(fake), the WGAN form SN-PatchGAN / DeepFill v2 and most hinge
      GANs train with (unbounded: it keeps pushing D(fake) up). relu: mean relu(1 -
      D(fake)), DGFNet's Eq. (9): the same gradient while D(fake) < 1 and none once the
      margin 1 is met.

  Returns:
    () the loss.
  """
  fake = inputs.fake[0]
  if form == "mean":
    return -jnp.mean(fake)
  if form == "relu":
    return jnp.mean(jax.nn.relu(1.0 - fake))
  raise ValueError(f"hinge_g: form must be one of {', '.join(HINGE_G_FORMS)}, got {form!r}")


@LOSSES.register("hinge_d")
@needs_discriminator
def hinge_d(inputs: LossInputs):
  """Hinge GAN discriminator loss: mean relu(1 - D(real)) + mean relu(1 + D(fake))."""
  real, fake = inputs.real[0], inputs.fake[0]
  real_loss = jnp.mean(jax.nn.relu(1.0 - real))
  fake_loss = jnp.mean(jax.nn.relu(1.0 + fake))
  return real_loss + fake_loss, {"real": real_loss, "fake": fake_loss}


@LOSSES.register("lsgan_g")
@needs_discriminator
def lsgan_g(inputs: LossInputs, real_label: float = 1.0) -> jax.Array:
  """Least-squares GAN generator loss (Mao et al. 2017; DCF): mean (D(fake) - 1)^2."""
  return jnp.mean(jnp.square(inputs.fake[0] - real_label))


@LOSSES.register("lsgan_d")
@needs_discriminator
def lsgan_d(inputs: LossInputs, real_label: float = 1.0, fake_label: float = 0.0,
            clamp_each: float | None = None):
  """Least-squares GAN discriminator loss: 0.5 * [mean (D(real) - 1)^2 + mean D(fake)^2].

  Args:
    inputs: the loss inputs.
    real_label, fake_label: the regression targets.
    clamp_each: DCF clamps each half at 2 before averaging (None: no clamp).
  """
  real_loss = jnp.mean(jnp.square(inputs.real[0] - real_label))
  fake_loss = jnp.mean(jnp.square(inputs.fake[0] - fake_label))
  if clamp_each is not None:
    real_loss = jnp.minimum(real_loss, clamp_each)
    fake_loss = jnp.minimum(fake_loss, clamp_each)
  return 0.5 * (real_loss + fake_loss), {"real": real_loss, "fake": fake_loss}


@LOSSES.register("bce_g")
@needs_discriminator
def bce_g(inputs: LossInputs) -> jax.Array:
  """Binary cross-entropy with logits, fake labelled real: mean BCE(D(fake), 1).

  Equal to `nonsaturating_g` (BCE(x, 1) = softplus(-x)); registered under the
  name papers use (EdgeConnect, DeepFill v1 style GANs).
  """
  return jnp.mean(sigmoid_bce(inputs.fake[0], 1.0))


@LOSSES.register("bce_d")
@needs_discriminator
def bce_d(inputs: LossInputs, real_label: float = 1.0):
  """BCE with logits: mean BCE(D(real), real_label) + mean BCE(D(fake), 0).

  `real_label` < 1 gives one-sided label smoothing.
  """
  real_loss = jnp.mean(sigmoid_bce(inputs.real[0], real_label))
  fake_loss = jnp.mean(sigmoid_bce(inputs.fake[0], 0.0))
  return real_loss + fake_loss, {"real": real_loss, "fake": fake_loss}


def sigmoid_bce(logits: jax.Array, label: float) -> jax.Array:
  """Elementwise sigmoid cross-entropy: -y log s(x) - (1 - y) log(1 - s(x)), stable."""
  return label * jax.nn.softplus(-logits) + (1.0 - label) * jax.nn.softplus(logits)
