"""Discriminators, NHWC.

`NLayerDiscriminator` (`nlayer`): the pix2pixHD multi-layer PatchGAN used by
LaMa. For n_layers = L there are L + 2 stages;
stage n is `conv_n` (+ `bn_n` for 1 <= n <= L), matching the official
`model{n}.0` / `model{n}.1` submodules:

  stage 0:       Conv 4x4 s2 (+bias) -> LeakyReLU 0.2
  stage 1..L-1:  Conv 4x4 s2 -> BN -> LeakyReLU 0.2   (width x2 per stage, cap 512)
  stage L:       Conv 4x4 s1 -> BN -> LeakyReLU 0.2
  stage L+1:     Conv 4x4 s1 -> 1 logit map

All convs have a bias and zero padding 2. Output size per stage at input S:
stride 2: S/2 + 1 (floor), stride 1: S + 1 (256 -> 129, 65, 33, 17, 18, 19).

`norm="instance", use_bias=False` gives the WGAN-GP critic of a student study of LaMa
(PyTorch `InstanceNorm2d(affine=True)`, no conv bias): BatchNorm couples the examples
of a batch, which the per-example gradient penalty assumes they are not (Gulrajani et
al. 2017 take batch normalisation out of the critic for this reason).

`SNPatchGANDiscriminator` (`sn_patchgan`): DeepFill v2's spectral-normalised
PatchGAN (Yu et al., ICCV 2019), used by the DFNet `sngan` option and meant for
reuse by other families. Six 5x5 stride-2 convs with bias and TF-"SAME" zero
padding (`tf_same_padding`: 1 before and 2 after on even sizes, 2 and 2 on odd ones, so
every layer gives ceil(size / 2) as TensorFlow does), widths 64-128-256-256-256-256
(with `ndf` = 64),
each followed by LeakyReLU 0.2, including the last: as in DeepFill v2 the
(N, H/64, W/64, 256) map of the last layer is the output, every entry a patch
score for the hinge loss. Every conv is wrapped in `SpectralNorm` (one power
iteration per train-mode call, u/v in the `spectral` collection), so unlike the
DFNet TF2 port's SN-GAN its weights are trainable parameters and its u/v
advance. Input: the image plus the mask channel (`losses.d_input_mask=True`),
4 channels; 5,946,816 parameters at ndf 64.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaint_jax.models.layers import Conv
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.models.spectral_norm import SpectralNorm
from inpaint_jax.registry import DISCRIMINATORS

Array = jax.Array


def tf_same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
  """TensorFlow's "SAME" padding (before, after) of one axis of `size` pixels.

  Output size ceil(size / stride); the odd pixel of the total goes after. On sizes
  divisible by the stride this is `layers.same_padding`.
  """
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel_size - size, 0)
  return total // 2, total - total // 2


@DISCRIMINATORS.register("nlayer")
class NLayerDiscriminator(nn.Module):
  """pix2pixHD NLayerDiscriminator with PyTorch-style BatchNorm.

  Attributes:
    input_nc: input channels (LaMa: RGB only, never the mask).
    ndf: width of the first conv.
    n_layers: number of downsampling stages (LaMa: 4).
    dtype: computation dtype (None: promote input and params).
    norm: "batch" (`bn_{n}`, PyTorch-style BatchNorm) or "instance" (`in_{n}`, per-example
      and per-channel statistics with a learnt scale and bias, eps 1e-5 as PyTorch).
    use_bias: bias on every conv.
  """

  input_nc: int = 3
  ndf: int = 64
  n_layers: int = 4
  dtype: Any = None
  norm: str = "batch"
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> tuple[Array, list[Array]]:
    """Scores patches of x.

    Args:
      x: (N, H, W, input_nc).
      train: BatchNorm mode (train mode needs `mutable=['batch_stats']`).

    Returns:
      (logits (N, h, w, 1), [the n_layers + 1 stage outputs before the logit
      conv]); with the defaults that is 5 feature maps, used by the
      feature-matching loss.
    """
    if x.shape[-1] != self.input_nc:
      raise ValueError(f"NLayerDiscriminator expects {self.input_nc} channels, got {x.shape}")
    if self.norm not in ("batch", "instance"):
      raise ValueError(f"NLayerDiscriminator: norm must be batch or instance, got {self.norm!r}")

    def conv(n, features, stride):
      return Conv(features, 4, strides=stride, padding=2, use_bias=self.use_bias,
                  dtype=self.dtype, name=f"conv_{n}")

    def norm(n, x):
      if self.norm == "instance":
        return nn.InstanceNorm(epsilon=1e-5, dtype=self.dtype, name=f"in_{n}")(x)
      return BatchNorm(dtype=self.dtype, name=f"bn_{n}")(x, train=train)

    feats = []
    x = nn.leaky_relu(conv(0, self.ndf, 2)(x), 0.2)
    feats.append(x)
    nf = self.ndf
    for n in range(1, self.n_layers + 1):
      nf = min(nf * 2, 512)
      x = conv(n, nf, 2 if n < self.n_layers else 1)(x)
      x = norm(n, x)
      x = nn.leaky_relu(x, 0.2)
      feats.append(x)
    logits = conv(self.n_layers + 1, 1, 1)(x)
    # Losses run in float32 whatever the computation dtype (a no-op in float32).
    return logits.astype(jnp.float32), [f.astype(jnp.float32) for f in feats]


@DISCRIMINATORS.register("sn_patchgan")
class SNPatchGANDiscriminator(nn.Module):
  """DeepFill v2's SN-PatchGAN discriminator (see the module docstring).

  Attributes:
    input_nc: input channels (RGB + mask = 4).
    ndf: width of the first conv; the others are 2, 4, 4, 4, 4 times it.
    n_layers: number of stride-2 convs (6).
    dtype: computation dtype (None: promote input and params).
  """

  input_nc: int = 4
  ndf: int = 64
  n_layers: int = 6
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> tuple[Array, list[Array]]:
    """Scores patches of x.

    Args:
      x: (N, H, W, input_nc); H and W are best multiples of 2**n_layers.
      train: run the power iteration and store the new u, v (pass
        `mutable=['spectral']`); False uses the stored vectors.

    Returns:
      (scores (N, ceil(H / 2**n_layers), ceil(W / 2**n_layers), 4 * ndf) after the
      last LeakyReLU, [the output of every layer]).
    """
    if x.shape[-1] != self.input_nc:
      raise ValueError(f"SNPatchGANDiscriminator expects {self.input_nc} channels (image + "
                       f"mask: set losses.d_input_mask=True), got {x.shape}")
    feats = []
    for i in range(self.n_layers):
      width = self.ndf * min(2 ** i, 4)
      # Padding from this layer's input size (odd sizes pad 2/2, as TF "SAME" does).
      pad = (tf_same_padding(x.shape[1], 5, 2), tf_same_padding(x.shape[2], 5, 2))
      conv = Conv(width, 5, strides=2, padding=pad, dtype=self.dtype)
      x = nn.leaky_relu(SpectralNorm(conv, name=f"conv_{i}")(x, update_stats=train), 0.2)
      feats.append(x)
    # Losses run in float32 whatever the computation dtype (a no-op in float32).
    return x.astype(jnp.float32), [f.astype(jnp.float32) for f in feats]
