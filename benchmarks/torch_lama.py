"""A plain `torch.nn` reference of LaMa's FFC ResNet generator, for speed comparisons.

Not part of the package and not imported by the tests. The module tree and parameter
names follow the official LaMa state_dict (`model.<i>.ffc.convl2l.weight`, ...), so the
official weights (or the golden test file's) load with `strict=True`; `--check FILE`
verifies that against a golden `.npz` (weights + `io/eval/pred`-style outputs).

Layout (NCHW, as the official code):
  ReflectionPad(3), FFC_BN_ACT 7x7, 3 x FFC_BN_ACT 3x3 stride 2, n_blocks x
  FFCResnetBlock, concat, 3 x (ConvTranspose 3x3 s2 + BN + ReLU), ReflectionPad(3),
  Conv 7x7, sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn


class FourierUnit(nn.Module):
  """rfft2 (ortho) -> [re, im] interleaved per channel -> 1x1 conv + BN + ReLU -> irfft2."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv_layer = nn.Conv2d(2 * cin, 2 * cout, 1, bias=False)
    self.bn = nn.BatchNorm2d(2 * cout)
    self.relu = nn.ReLU(inplace=True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x.shape
    z = torch.fft.rfft2(x, norm="ortho")
    f = torch.stack((z.real, z.imag), dim=2).flatten(1, 2)  # (b, 2c, h, w//2+1), c-major
    f = self.relu(self.bn(self.conv_layer(f)))
    f = f.view(b, -1, 2, h, f.shape[-1])
    return torch.fft.irfft2(torch.complex(f[:, :, 0], f[:, :, 1]), s=(h, w), norm="ortho")


class SpectralTransform(nn.Module):
  """conv2(t + fu(t)), t = ReLU(BN(conv1(x))); hidden width cout // 2."""

  def __init__(self, cin: int, cout: int, stride: int = 1):
    super().__init__()
    self.downsample = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
    self.conv1 = nn.Sequential(nn.Conv2d(cin, cout // 2, 1, bias=False),
                               nn.BatchNorm2d(cout // 2), nn.ReLU(inplace=True))
    self.fu = FourierUnit(cout // 2, cout // 2)
    self.conv2 = nn.Conv2d(cout // 2, cout, 1, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.conv1(self.downsample(x))
    return self.conv2(x + self.fu(x))


class FFC(nn.Module):
  """out_l = l2l(x_l) + g2l(x_g), out_g = l2g(x_l) + g2g(x_g); empty branches omitted."""

  def __init__(self, cin: int, cout: int, k: int, ratio_gin: float, ratio_gout: float,
               stride: int = 1, padding: int = 0, padding_mode: str = "reflect"):
    super().__init__()
    in_cg = int(cin * ratio_gin)
    in_cl = cin - in_cg
    out_cg = int(cout * ratio_gout)
    out_cl = cout - out_cg
    self.ratio_gout = ratio_gout

    def conv(a, b):
      if a == 0 or b == 0:
        return nn.Identity()
      return nn.Conv2d(a, b, k, stride, padding, bias=False, padding_mode=padding_mode)

    self.convl2l = conv(in_cl, out_cl)
    self.convl2g = conv(in_cl, out_cg)
    self.convg2l = conv(in_cg, out_cl)
    self.convg2g = (nn.Identity() if in_cg == 0 or out_cg == 0
                    else SpectralTransform(in_cg, out_cg, stride))

  def forward(self, x):
    x_l, x_g = x if isinstance(x, tuple) else (x, 0)
    out_l, out_g = 0, 0
    if self.ratio_gout != 1:
      out_l = self.convl2l(x_l) + (self.convg2l(x_g) if torch.is_tensor(x_g) else 0)
    if self.ratio_gout != 0:
      out_g = self.convl2g(x_l) + (self.convg2g(x_g) if torch.is_tensor(x_g) else 0)
    return out_l, out_g


class FFC_BN_ACT(nn.Module):  # noqa: N801  (the official name keeps the keys readable)
  """FFC, then BN + ReLU on each non-empty half."""

  def __init__(self, cin: int, cout: int, k: int, ratio_gin: float = 0.0,
               ratio_gout: float = 0.0, stride: int = 1, padding: int = 0):
    super().__init__()
    self.ffc = FFC(cin, cout, k, ratio_gin, ratio_gout, stride, padding)
    out_cg = int(cout * ratio_gout)
    out_cl = cout - out_cg
    self.bn_l = nn.BatchNorm2d(out_cl) if out_cl else nn.Identity()
    self.bn_g = nn.BatchNorm2d(out_cg) if out_cg else nn.Identity()
    self.act_l = nn.ReLU(inplace=True) if out_cl else nn.Identity()
    self.act_g = nn.ReLU(inplace=True) if out_cg else nn.Identity()

  def forward(self, x):
    x_l, x_g = self.ffc(x)
    if torch.is_tensor(x_l):
      x_l = self.act_l(self.bn_l(x_l))
    if torch.is_tensor(x_g):
      x_g = self.act_g(self.bn_g(x_g))
    return x_l, x_g


class FFCResnetBlock(nn.Module):

  def __init__(self, dim: int, ratio: float):
    super().__init__()
    self.conv1 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1)
    self.conv2 = FFC_BN_ACT(dim, dim, 3, ratio, ratio, padding=1)

  def forward(self, x):
    x_l, x_g = x
    y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
    return x_l + y_l, x_g + y_g


class ConcatTuple(nn.Module):

  def forward(self, x):
    return torch.cat([t for t in x if torch.is_tensor(t)], dim=1)


class FFCResNetGenerator(nn.Module):
  """big-lama: n_blocks=18; lama-fourier: n_blocks=9. Input (N, 4, H, W)."""

  def __init__(self, input_nc: int = 4, output_nc: int = 3, ngf: int = 64,
               n_downsampling: int = 3, n_blocks: int = 9, ratio: float = 0.75,
               max_features: int = 1024):
    super().__init__()
    layers: list[nn.Module] = [nn.ReflectionPad2d(3),
                               FFC_BN_ACT(input_nc, min(max_features, ngf), 7)]
    for i in range(n_downsampling):
      cin = min(max_features, ngf * 2 ** i)
      cout = min(max_features, ngf * 2 ** (i + 1))
      layers.append(FFC_BN_ACT(cin, cout, 3, 0.0, ratio if i == n_downsampling - 1 else 0.0,
                               stride=2, padding=1))
    dim = min(max_features, ngf * 2 ** n_downsampling)
    layers += [FFCResnetBlock(dim, ratio) for _ in range(n_blocks)]
    layers.append(ConcatTuple())
    for i in range(n_downsampling):
      cin = min(max_features, ngf * 2 ** (n_downsampling - i))
      cout = min(max_features, int(ngf * 2 ** (n_downsampling - i) / 2))
      layers += [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Sigmoid()]
    self.model = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.model(x)


def check_against_golden(path: str) -> float:
  """Loads a golden file's weights with strict=True; returns the max |eval pred diff|."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  data = np.load(path)
  keys = [k for k in data.files if k.startswith("model.")]
  n_blocks = len({k.split(".")[1] for k in keys if ".conv1." in k})
  ngf = data["model.1.ffc.convl2l.weight"].shape[0]
  net = FFCResNetGenerator(ngf=ngf, n_blocks=n_blocks)
  state = {k: torch.from_numpy(np.array(data[k])) for k in keys}
  state = {k: (v.long() if k.endswith("num_batches_tracked") else v) for k, v in state.items()}
  net.load_state_dict(state, strict=True)
  net.eval()
  worst = 0.0
  for io in ("io", "io2"):
    with torch.no_grad():
      pred = net(torch.from_numpy(data[f"{io}/input"]))
    worst = max(worst, float((pred - torch.from_numpy(data[f"{io}/output_eval"])).abs().max()))
  return worst


if __name__ == "__main__":
  import sys
  if len(sys.argv) == 3 and sys.argv[1] == "--check":
    print("max |pred - golden| =", check_against_golden(sys.argv[2]))
  else:
    raise SystemExit("usage: python benchmarks/torch_lama.py --check GOLDEN.npz")
