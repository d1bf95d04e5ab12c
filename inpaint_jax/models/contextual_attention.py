"""Contextual attention (DeepFill, Yu et al. CVPR 2018), generalised to several value levels.

Parameter-free, NHWC, pure functions, so any family can call them inside its modules.

DeepFill's `contextual_attention(f, b, mask)` fills the foreground f (the hole) with
patches of the background b (the known region), all feature maps of one size:

1. *raw patches*: b is cut into 2r x 2r patches with stride r (r = `rate`, TF "SAME"
   zero padding); these are what gets pasted;
2. *downscaled matching*: f, b and the mask are downscaled by r (every r-th pixel, the
   nearest rule of PyTorch ports; TF's `align_corners=True` nearest picks slightly
   different pixels for some sizes) and b is cut into k x k key patches (k = `ksize`,
   stride 1, "SAME");
3. *normalised keys*: each key patch is divided by max(||patch||, 1e-4) and correlated
   with f (a k x k "SAME" convolution), giving a score for every (query pixel, key);
4. *fuse*: the (queries x keys) score matrix, queries and keys flattened row-major, is
   convolved with a `fuse_k` x `fuse_k` identity kernel, then the same again with both
   flattened column-major, so a match scores higher when the neighbouring queries match
   the neighbouring keys (as in DeepFill, the flattening wraps at row ends);
5. *masked keys*: a key whose k x k patch touches a hole (mask 1) gets score 0 before and
   weight 0 after the softmax over keys, which is taken with scale `softmax_scale` (10);
6. *paste*: the attention map is transposed-convolved with the raw patches (stride r) and
   divided by 4, the number of 2r x 2r patches at stride r covering each pixel.

The generalisation (`pyramidal_attention`): the attention computed at one level (queries
f, keys b, both of size h x w) pastes values from *several* feature maps at once, one of
size (s h) x (s w) per stride s, with 2s x 2s patches at stride s: s = 1 pastes patches of
a map of the attention's own size, s = 2 pastes the patches of the next finer level, taken
directly from that level's features instead of from a downscaled copy. DeepFill's function
is the special case of one value map, b itself at full size, with s = r.

Differences from DeepFill's TF code, on purpose: the mask may differ per example (DeepFill
uses the first example's mask for the whole batch), and there is no `offsets` output
(`attention_weights(...).argmax(-1)` gives the matched key per query).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

KEY_NORM_FLOOR = 1e-4  # DeepFill: keys / max(||key||, 1e-4)


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TF "SAME" padding (before, after) of one axis: ceil(size / stride) outputs."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def extract_patches(x: Array, kernel: int, stride: int) -> Array:
  """TF `extract_image_patches` with "SAME" zero padding.

  Args:
    x: (N, H, W, C).
    kernel: patch side.
    stride: step between patch origins.

  Returns:
    (N, ceil(H / stride), ceil(W / stride), kernel, kernel, C); patch (i, j) covers
    rows [i * stride - pad_top, i * stride - pad_top + kernel) of x.
  """
  n, h, w, c = x.shape
  ph, pw = same_pad(h, kernel, stride), same_pad(w, kernel, stride)
  # One XLA op (its gradient is one convolution); features come out ordered (C, kh, kw).
  p = jax.lax.conv_general_dilated_patches(x, (kernel, kernel), (stride, stride), (ph, pw),
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
  oh, ow = p.shape[1:3]
  return p.reshape(n, oh, ow, c, kernel, kernel).transpose(0, 1, 2, 4, 5, 3)


def _fuse_once(scores: Array, k: int) -> Array:
  """(N, Q, L) -> (N, Q, L): "SAME" correlation with a k x k identity kernel."""
  before = (k - 1) // 2
  nq, nk = scores.shape[1:]
  sp = jnp.pad(scores, ((0, 0), (before, k - 1 - before), (before, k - 1 - before)))
  return sum(sp[:, a:a + nq, a:a + nk] for a in range(k))


def fuse_scores(scores: Array, fuse_k: int = 3) -> Array:
  """DeepFill's fuse step on scores (N, Hf, Wf, Hb, Wb); returns the same shape."""
  n, hf, wf, hb, wb = scores.shape
  y = _fuse_once(scores.reshape(n, hf * wf, hb * wb), fuse_k)
  y = y.reshape(n, hf, wf, hb, wb).transpose(0, 2, 1, 4, 3).reshape(n, wf * hf, wb * hb)
  y = _fuse_once(y, fuse_k)
  return y.reshape(n, wf, hf, wb, hb).transpose(0, 2, 1, 4, 3)


def key_validity(hole: Array, ksize: int = 3, stride: int = 1) -> Array:
  """1 for keys whose ksize x ksize patch holds no hole pixel: (N, H, W, 1) -> (N, L).

  The patch is taken with "SAME" zero padding, so pixels outside the map count as known,
  as in DeepFill.
  """
  m = extract_patches(hole.astype(jnp.float32), ksize, stride)
  n = m.shape[0]
  return (jnp.mean(m.reshape(n, -1, ksize * ksize * m.shape[-1]), axis=-1) == 0.0
          ).astype(jnp.float32)


def attention_weights(f: Array, b: Array, hole: Array | None = None, *, ksize: int = 3,
                      stride: int = 1, fuse_k: int = 3, softmax_scale: float = 10.0,
                      fuse: bool = True) -> Array:
  """Steps 3-5: attention of every query pixel of f over the key patches of b.

  Args:
    f: (N, Hf, Wf, C) queries (the foreground).
    b: (N, Hb, Wb, C) keys (the background), cut into ksize x ksize patches at `stride`.
    hole: (N, Hb, Wb, 1), 1 = hole: keys touching a hole get no weight (None: all keys).
    ksize: key patch side.
    stride: key patch stride.
    fuse_k: side of the fuse kernel (fuse=False skips the fuse step).
    softmax_scale: the softmax temperature's inverse (DeepFill: 10).
    fuse: apply the fuse step.

  Returns:
    (N, Hf, Wf, L) float32 weights, L = ceil(Hb / stride) * ceil(Wb / stride) keys in
    row-major order; each row sums to 1 over the valid keys (0 when none is valid).
  """
  if f.shape[-1] != b.shape[-1]:
    raise ValueError(f"contextual attention: f and b need the same channels, got {f.shape} "
                     f"and {b.shape}")
  f = f.astype(jnp.float32)
  b = b.astype(jnp.float32)
  n, hf, wf, c = f.shape
  keys = extract_patches(b, ksize, stride)
  hk, wk = keys.shape[1:3]
  keys = keys.reshape(n, hk * wk, ksize * ksize * c)
  keys = keys / jnp.maximum(jnp.linalg.norm(keys, axis=-1, keepdims=True), KEY_NORM_FLOOR)
  # The "SAME" k x k correlation of f with every key = query patches . keys.
  queries = extract_patches(f, ksize, 1).reshape(n, hf * wf, ksize * ksize * c)
  scores = jnp.einsum("nqd,nld->nql", queries, keys)
  if fuse:
    scores = fuse_scores(scores.reshape(n, hf, wf, hk, wk), fuse_k)
  scores = scores.reshape(n, hf, wf, hk * wk)
  valid = (jnp.ones((n, hk * wk), jnp.float32) if hole is None
           else key_validity(hole, ksize, stride))[:, None, None, :]
  scores = scores * valid
  weights = jax.nn.softmax(scores * softmax_scale, axis=-1)
  return weights * valid


def paste(weights: Array, values: Array, *, rate: int, stride: int = 1) -> Array:
  """Step 6: transposed convolution of the weights with 2r x 2r value patches, / 4.

  Args:
    weights: (N, Hf, Wf, L) attention over L keys.
    values: (N, H, W, C) with L = ceil(H / (rate * stride)) * ceil(W / (rate * stride)):
      the map whose 2 rate x 2 rate patches at stride rate * stride are pasted.
    rate: the output is rate times the size of the weights.
    stride: the key stride the weights were computed with.

  Returns:
    (N, rate * Hf, rate * Wf, C) float32.
  """
  n, hf, wf, nkeys = weights.shape
  k = 2 * rate
  raw = extract_patches(values.astype(jnp.float32), k, rate * stride)
  if raw.shape[1] * raw.shape[2] != nkeys:
    raise ValueError(f"contextual attention: values {values.shape} give "
                     f"{raw.shape[1] * raw.shape[2]} patches at rate {rate}, stride {stride}; "
                     f"the weights have {nkeys} keys")
  cv = raw.shape[-1]
  pasted = jnp.einsum("nql,nld->nqd", weights.reshape(n, hf * wf, nkeys),
                      raw.reshape(n, nkeys, k * k * cv))
  pasted = pasted.reshape(n, hf, wf, 2, rate, 2, rate, cv)
  # Patch row a = a1 * rate + a0 of query i lands on output row rate * (i + a1) + a0
  # (before cropping): four block-shifted copies summed.
  out = 0.0
  for a1 in range(2):
    for b1 in range(2):
      block = pasted[:, :, :, a1, :, b1].transpose(0, 1, 3, 2, 4, 5)  # (n, hf, r, wf, r, c)
      out = out + jnp.pad(block, ((0, 0), (a1, 1 - a1), (0, 0), (b1, 1 - b1), (0, 0), (0, 0)))
  out = out.reshape(n, (hf + 1) * rate, (wf + 1) * rate, cv)
  # TF conv2d_transpose "SAME" crops the padding of the matching forward conv.
  top = same_pad(rate * hf, k, rate)[0]
  left = same_pad(rate * wf, k, rate)[0]
  return out[:, top:top + rate * hf, left:left + rate * wf] / 4.0


def downscale(x: Array, rate: int) -> Array:
  """Every rate-th pixel from the first (PyTorch nearest downscaling by 1/rate)."""
  return x if rate == 1 else x[:, ::rate, ::rate]


def contextual_attention(f: Array, b: Array, mask: Array | None = None, *, ksize: int = 3,
                         stride: int = 1, rate: int = 2, fuse_k: int = 3,
                         softmax_scale: float = 10.0, fuse: bool = True,
                         return_weights: bool = False) -> Array | tuple[Array, Array]:
  """DeepFill's contextual attention (see the module docstring), NHWC.

  Args:
    f: (N, H, W, C) foreground features (queries).
    b: (N, H, W, C) background features (keys and raw values); H, W multiples of rate.
    mask: (N, H, W, 1), 1 = hole; None: every key is valid.
    ksize, stride, fuse_k, softmax_scale, fuse: as `attention_weights`.
    rate: matching happens at 1 / rate of the size; 2 rate x 2 rate raw patches.
    return_weights: also return the (N, H / rate, W / rate, L) attention.

  Returns:
    (N, H, W, C) float32, or (that, weights).
  """
  if f.shape[1:3] != b.shape[1:3]:
    raise ValueError(f"contextual_attention: f {f.shape} and b {b.shape} need one size")
  if f.shape[1] % rate or f.shape[2] % rate:
    raise ValueError(f"contextual_attention: H and W must be multiples of rate={rate}, "
                     f"got {f.shape}")
  hole = None if mask is None else downscale(mask, rate)
  weights = attention_weights(downscale(f, rate), downscale(b, rate), hole, ksize=ksize,
                              stride=stride, fuse_k=fuse_k, softmax_scale=softmax_scale,
                              fuse=fuse)
  y = paste(weights, b, rate=rate, stride=stride)
  return (y, weights) if return_weights else y


def pyramidal_attention(f: Array, b: Array, hole: Array | None,
                        values: Sequence[tuple[Array, int]], *, ksize: int = 3,
                        fuse_k: int = 3, softmax_scale: float = 10.0,
                        fuse: bool = True) -> list[Array]:
  """One attention at the size of f, pasting values from several levels.

  Args:
    f: (N, h, w, C) queries.
    b: (N, h, w, C) keys (3 x 3 patches, stride 1).
    hole: (N, h, w, 1), 1 = hole, for the keys (None: all valid).
    values: (map, s) pairs; map is (N, s h, s w, C_map), pasted with 2s x 2s patches.
    ksize, fuse_k, softmax_scale, fuse: as `attention_weights`.

  Returns:
    One (N, s h, s w, C_map) float32 array per value map.
  """
  h, w = b.shape[1:3]
  for v, s in values:
    if v.shape[1:3] != (s * h, s * w):
      raise ValueError(f"pyramidal_attention: a value map at stride {s} must be "
                       f"{s * h}x{s * w} for keys of {h}x{w}, got {v.shape}")
  weights = attention_weights(f, b, hole, ksize=ksize, stride=1, fuse_k=fuse_k,
                              softmax_scale=softmax_scale, fuse=fuse)
  return [paste(weights, v, rate=s) for v, s in values]
