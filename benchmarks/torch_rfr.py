"""A plain `torch.nn` RFR-Net generator, for speed comparisons with `inpaint_jax`.

Not part of the package and not imported by the tests. Written from the published
structure of the official `RFRNet` (Li et al., CVPR 2020; see `docs/rfr.md` and the
docstring of `inpaint_jax/models/rfr/network.py`), with the official module tree and
parameter names, so `models.rfr.torch_keys.variables_to_torch` of our variables loads
with `strict=True`. It does the work the official module does, op for op where the cost
depends on it: the partial convolutions' mask update is a full convolution of the
multi-channel mask with a ones kernel under `torch.no_grad()`, and the knowledge-
consistent attention scores and reads with `conv2d` / `conv_transpose2d` by the
normalised feature vectors, one example at a time.

Layout: NCHW. `forward(in_image, mask)` takes the masked image and the 3-channel mask
(1 = known), as the official module does, and returns the raw output (N, 3, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KCA_EPS = 1e-7
MERGE_EPS = 1e-7
RATIO_EPS = 1e-8


class PartialConv2d(nn.Conv2d):
  """Multi-channel partial convolution without bias: (x, mask) -> (out, new mask)."""

  def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0):
    super().__init__(cin, cout, k, stride, padding, bias=False)
    self.register_buffer("mask_kernel", torch.ones(cout, cin, k, k), persistent=False)
    self.window = cin * k * k

  def forward(self, x: torch.Tensor, mask: torch.Tensor):  # pylint: disable=arguments-differ
    with torch.no_grad():
      count = F.conv2d(mask, self.mask_kernel, stride=self.stride, padding=self.padding)
      new_mask = count.clamp(0, 1)
      ratio = self.window / (count + RATIO_EPS) * new_mask
    return super().forward(x * mask) * ratio, new_mask


class KnowledgeConsistentAttention(nn.Module):
  """Patch size 1, 3x3 score propagation, blended with the previous recurrence's map."""

  def __init__(self):
    super().__init__()
    self.ratio = nn.Parameter(torch.ones(1))
    self.prev = None  # (scores, masks) of the previous recurrence

  def forward(self, f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    mask = F.interpolate(mask, size=(h, w), mode="nearest")
    keys_all = f.reshape(n, c, h * w, 1, 1).permute(0, 2, 1, 3, 4)
    outs, scores = [], []
    r = self.ratio.abs() + KCA_EPS
    for i in range(n):
      k = keys_all[i] + KCA_EPS
      k = k / k.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
      s = F.avg_pool2d(F.conv2d(f[i:i + 1], k), 3, 1, padding=1) * 9
      a = F.softmax(s, dim=1)
      if self.prev is not None:
        a_prev, m_prev = self.prev
        a = (a_prev[i:i + 1] * m_prev[i:i + 1] + a * r) / (m_prev[i:i + 1] + r)
      scores.append(a)
      outs.append(F.conv_transpose2d(a, k))
    self.prev = (torch.cat(scores).reshape(n, h * w, h, w), mask.reshape(n, 1, h, w))
    return torch.cat(outs)


class AttentionModule(nn.Module):

  def __init__(self, channels: int):
    super().__init__()
    self.att = KnowledgeConsistentAttention()
    self.combiner = nn.Conv2d(2 * channels, channels, 1)

  def forward(self, f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return self.combiner(torch.cat([self.att(f, mask), f], dim=1))


class RFRModule(nn.Module):
  """The recurrent U-Net: enc_1..3 stride 2, enc_4.. dilated, decoder with KCA at H/8."""

  def __init__(self, c: int = 64, layer_size: int = 6):
    super().__init__()
    self.layer_size = layer_size
    widths = [c, 2 * c, 4 * c] + [8 * c] * (layer_size - 2)
    for i in range(1, layer_size + 1):
      if i <= 3:
        conv = nn.Conv2d(widths[i - 1], widths[i], 3, 2, 1, bias=False)
      else:
        conv = nn.Conv2d(widths[i - 1], widths[i], 3, 1, 2, dilation=2, bias=False)
      setattr(self, f"enc_{i}", nn.Sequential(conv, nn.BatchNorm2d(widths[i]),
                                              nn.ReLU(inplace=True)))
    for i in range(layer_size - 1, 0, -1):
      cin = widths[i + 1] + widths[i]
      if i >= 4:
        conv = nn.Conv2d(cin, widths[i], 3, 1, 2, dilation=2, bias=False)
        cout = widths[i]
      else:
        cout = widths[i] if i > 1 else c
        conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
      setattr(self, f"dec_{i}", nn.Sequential(conv, nn.BatchNorm2d(cout),
                                              nn.LeakyReLU(0.2, inplace=True)))
    self.att = AttentionModule(widths[3])

  def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    hs = [x]
    for i in range(1, self.layer_size + 1):
      hs.append(getattr(self, f"enc_{i}")(hs[-1]))
    h = hs[-1]
    for i in range(self.layer_size - 1, 0, -1):
      h = getattr(self, f"dec_{i}")(torch.cat([h, hs[i]], dim=1))
      if i == 3:
        h = self.att(h, mask)
    return h


class Bottleneck(nn.Module):

  def __init__(self, planes: int):
    super().__init__()
    self.conv1 = nn.Conv2d(4 * planes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(4 * planes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    out = F.relu(self.bn1(self.conv1(x)))
    out = F.relu(self.bn2(self.conv2(out)))
    return F.relu(self.bn3(self.conv3(out)) + x)


class RFRNet(nn.Module):
  """The generator; `n_rec` recurrences of Pconv21, Pconv22, bn2 and the RFR module."""

  def __init__(self, ngf: int = 64, rec_ksize: int = 7, n_rec: int = 6, tail_ch: int = 32,
               layer_size: int = 6):
    super().__init__()
    k = rec_ksize
    self.n_rec = n_rec
    self.Pconv1 = PartialConv2d(3, ngf, 7, 2, 3)  # pylint: disable=invalid-name
    self.bn1 = nn.BatchNorm2d(ngf)
    self.Pconv2 = PartialConv2d(ngf, ngf, k, 1, k // 2)  # pylint: disable=invalid-name
    self.bn20 = nn.BatchNorm2d(ngf)
    self.Pconv21 = PartialConv2d(ngf, ngf, k, 1, k // 2)  # pylint: disable=invalid-name
    self.Pconv22 = PartialConv2d(ngf, ngf, k, 1, k // 2)  # pylint: disable=invalid-name
    self.bn2 = nn.BatchNorm2d(ngf)
    self.RFRModule = RFRModule(ngf, layer_size)  # pylint: disable=invalid-name
    self.Tconv = nn.ConvTranspose2d(ngf, ngf, 4, 2, 1, bias=False)  # pylint: disable=invalid-name
    self.bn3 = nn.BatchNorm2d(ngf)
    self.tail1 = PartialConv2d(ngf + 3, tail_ch, 3, 1, 1)
    self.tail2 = Bottleneck(tail_ch // 4)
    self.out = nn.Conv2d(2 * tail_ch, 3, 3, 1, 1, bias=False)

  def forward(self, in_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    x, m = self.Pconv1(in_image, mask)
    x = F.relu(self.bn1(x))
    x, m = self.Pconv2(x, m)
    x = F.relu(self.bn20(x))
    feats, masks = [x], [m]
    self.RFRModule.att.att.prev = None  # the blend starts afresh each forward
    for _ in range(self.n_rec):
      x, m = self.Pconv21(x, m)
      x, m = self.Pconv22(x, m)
      x = F.leaky_relu(self.bn2(x))
      x = self.RFRModule(x, m[:, :1]) * m
      feats.append(x)
      masks.append(m)
    fs, ms = torch.stack(feats, dim=2), torch.stack(masks, dim=2)
    x = (fs * ms).mean(dim=2) / (ms.mean(dim=2) + MERGE_EPS)
    x = F.leaky_relu(self.bn3(self.Tconv(x)))
    m = F.interpolate(ms[:, :, -1], scale_factor=2, mode="nearest")
    x5, _ = self.tail1(torch.cat([in_image, x], dim=1), torch.cat([mask, m], dim=1))
    x5 = F.leaky_relu(x5)
    return self.out(torch.cat([x5, self.tail2(x5)], dim=1))


def check_against_golden(path: str) -> dict[str, float]:
  """Loads `tests/data/rfr_small.npz`'s weights with strict=True and runs it in float64.

  Returns the max |difference| to the stored eval outputs, train-mode output and L1 loss
  (the file holds float64 results of a PyTorch reference of the official modules).
  """
  import json  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top

  data = np.load(path)
  meta = json.loads(str(data["meta_json"]))
  cfg = meta["generator_config"]
  net = RFRNet(ngf=cfg["ngf"], rec_ksize=cfg["rec_ksize"], n_rec=cfg["n_rec"],
               tail_ch=cfg["tail_ch"]).double()
  state = {k: torch.from_numpy(np.array(data[k])) for k in data.files
           if "/" not in k and k != "meta_json"}
  net.load_state_dict(state, strict=True)
  err = {}
  net.eval()
  for io in ("io", "io2"):
    image, mask = (torch.from_numpy(data[f"{io}/{k}"]).double() for k in ("image", "mask"))
    with torch.no_grad():
      pred = net(image * mask, mask)
    err[f"{io}/eval"] = float((pred - torch.from_numpy(data[f"{io}/output_eval"])).abs().max())
  net.train()
  image, mask = (torch.from_numpy(data[f"io/{k}"]).double() for k in ("image", "mask"))
  with torch.no_grad():
    pred = net(image * mask, mask)
  err["io/train"] = float((pred - torch.from_numpy(data["io/output_train"])).abs().max())
  err["loss"] = abs(float((pred - image).abs().mean()) - float(data["train/loss_l1"]))
  return err


if __name__ == "__main__":
  import sys
  if len(sys.argv) == 3 and sys.argv[1] == "--check":
    print("max |ours - golden|:", check_against_golden(sys.argv[2]))
  else:
    raise SystemExit("usage: python benchmarks/torch_rfr.py --check tests/data/rfr_small.npz")
