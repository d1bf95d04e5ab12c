"""LaMa generator: `FFCResNetGenerator` (`kind: ffc_resnet`), NHWC.

Structure (as the official `FFCResNetGenerator`), for n_downsampling = d:

  reflect pad 3 -> `init` FFC_BN_ACT 7x7 (all local)
  -> `down_0` .. `down_{d-1}` FFC_BN_ACT 3x3 stride 2 (the last one splits the
     output into local + global with share `ratio_g`)
  -> `block_0` .. `block_{n_blocks-1}` FFCResnetBlock
  -> concat([local, global])
  -> d x (`up_i` ConvTranspose 3x3 s2 p1 op1 with bias, `up_bn_i` BN, ReLU)
  -> reflect pad 3 -> `out` Conv 7x7 with bias -> sigmoid.

Every conv pads by reflection except the ConvTransposes (zeros).

Variables: `params` and `batch_stats` (`inpaint_jax.models.norm.BatchNorm`).
`inpaint_jax.convert.lama` maps the official PyTorch state_dict onto them.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from inpaint_jax.models.lama.ffc import FFC_BN_ACT, FFCResnetBlock, check_fft_impl
from inpaint_jax.models.layers import Conv, ConvTranspose, pad2d
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.registry import GENERATORS

Array = jax.Array


@GENERATORS.register("ffc_resnet")
class FFCResNetGenerator(nn.Module):
  """LaMa's FFC ResNet generator (lama-fourier: defaults; big-lama: n_blocks=18).

  Attributes:
    input_nc: input channels of the network (RGB + mask = 4).
    output_nc: output channels.
    ngf: width of the first conv.
    n_downsampling: number of stride-2 stages (H and W must be multiples of
      2**n_downsampling).
    n_blocks: number of FFC residual blocks.
    ratio_g: global share of the residual blocks (their ratio_gin and
      ratio_gout) and of the last downsampling stage's output.
    enable_lfu: local Fourier unit in the blocks' spectral paths.
    max_features: cap on any layer's width.
    dtype: computation dtype (None: float32). FFTs always run in float32 and
      the output is float32.
    l2g_spectral: in the residual blocks, the local-to-global 3x3 conv is replaced by
      a spectral transform (local C_l -> global C_g through the frequency domain).
    share_block_weights: each residual block applies one FFC layer twice (shared
      weights and BatchNorms) instead of two distinct layers.
    use_bias: bias on the encoder and FFC convs (LaMa: none there; the ConvTransposes
      and the output conv always have one).
    fft_impl: the Fourier units' transforms: `fft` (jnp.fft, default) or `matmul` (real
      DFT matrices at the feature map's size, no FFT or complex op: what the ONNX export
      uses); the same parameters, the same output to float32 noise.

  The last three default to LaMa; a student re-implementation of LaMa ran with
  `ratio_g=0.6, share_block_weights=True, use_bias=True` (and `l2g_spectral=True` for
  its spectral-convolution experiment), see `configs/lama_study.py`.
  """

  input_nc: int = 4
  output_nc: int = 3
  ngf: int = 64
  n_downsampling: int = 3
  n_blocks: int = 9
  ratio_g: float = 0.75
  enable_lfu: bool = False
  max_features: int = 1024
  dtype: Any = None
  l2g_spectral: bool = False
  share_block_weights: bool = False
  use_bias: bool = False
  fft_impl: str = "fft"

  @nn.compact
  def __call__(self, image: Array, mask: Array, *, train: bool) -> dict[str, Array]:
    """Predicts the full image.

    Args:
      image: (N, H, W, C) float in [0, 1], C = input_nc - 1.
      mask: (N, H, W, 1), 1 = hole.
      train: BatchNorm in train mode (batch statistics; pass
        `mutable=['batch_stats']`) or eval mode (running statistics).

    Returns:
      {"pred": (N, H, W, output_nc)} float32 in [0, 1], the raw prediction (not
      composited with the known pixels). With `mutable=['intermediates']` the
      eval taps are sown under `intermediates`: after_encoder_{local,global},
      after_block{i}_{local,global} (i from 1), after_merge, logits.

    Raises:
      ValueError: if shapes disagree or H, W are not multiples of
        2**n_downsampling.
    """
    if image.ndim != 4 or mask.shape != image.shape[:3] + (1,):
      raise ValueError(f"expected image (N,H,W,C) and mask (N,H,W,1), got {image.shape} and "
                       f"{mask.shape}")
    check_fft_impl(self.fft_impl)
    if image.shape[-1] + 1 != self.input_nc:
      raise ValueError(f"input_nc={self.input_nc} expects {self.input_nc - 1} image channels, "
                       f"got {image.shape[-1]}")
    h, w = image.shape[1:3]
    factor = 2 ** self.n_downsampling
    if h % factor or w % factor:
      raise ValueError(f"FFCResNetGenerator: H and W must be multiples of {factor} "
                       f"(2**n_downsampling), got {h}x{w}; pad the input first")

    mask = mask.astype(image.dtype)
    x = jnp.concatenate([image * (1.0 - mask), mask], axis=-1)
    if self.dtype is not None:
      x = x.astype(self.dtype)

    mf, ngf, d = self.max_features, self.ngf, self.n_downsampling
    x = pad2d(x, 3, "reflect")
    y = FFC_BN_ACT(min(mf, ngf), 7, 0.0, 0.0, padding=0, dtype=self.dtype,
                   use_bias=self.use_bias, name="init")(x, train=train)
    for i in range(d):
      ratio_gout = self.ratio_g if i == d - 1 else 0.0
      y = FFC_BN_ACT(min(mf, ngf * 2 ** (i + 1)), 3, 0.0, ratio_gout, stride=2, padding=1,
                     padding_type="reflect", dtype=self.dtype, use_bias=self.use_bias,
                     name=f"down_{i}")(y, train=train)
    self._sow_pair("after_encoder", y)
    dim = min(mf, ngf * 2 ** d)
    for i in range(self.n_blocks):
      y = FFCResnetBlock(dim, self.ratio_g, self.ratio_g, enable_lfu=self.enable_lfu,
                         padding_type="reflect", dtype=self.dtype,
                         l2g_spectral=self.l2g_spectral, use_bias=self.use_bias,
                         share_weights=self.share_block_weights, fft_impl=self.fft_impl,
                         name=f"block_{i}")(y, train=train)
      self._sow_pair(f"after_block{i + 1}", y)
    x = jnp.concatenate([a for a in y if a is not None], axis=-1)
    self.sow("intermediates", "after_merge", x)

    for i in range(d):
      feats = min(mf, int(ngf * 2 ** (d - i) / 2))
      x = ConvTranspose(feats, 3, strides=2, padding=1, output_padding=1, dtype=self.dtype,
                        name=f"up_{i}")(x)
      x = nn.relu(BatchNorm(dtype=self.dtype, name=f"up_bn_{i}")(x, train=train))
    x = pad2d(x, 3, "reflect")
    logits = Conv(self.output_nc, 7, dtype=self.dtype, name="out")(x).astype(jnp.float32)
    self.sow("intermediates", "logits", logits)
    return {"pred": jax.nn.sigmoid(logits)}

  def _sow_pair(self, name: str, pair) -> None:
    x_l, x_g = pair
    if x_l is not None:
      self.sow("intermediates", f"{name}_local", x_l)
    if x_g is not None:
      self.sow("intermediates", f"{name}_global", x_g)
