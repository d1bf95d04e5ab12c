"""Plain `torch.nn` reference networks for the backbone and loss tests (no torchvision).

Imported only by tests that skip without torch. They are written from the
published architectures and state_dict layouts: CSAIL's ADE20k
`resnet50dilated` encoder and LaMa's `ResNetPL` on top of it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchBottleneck(nn.Module):
  """ResNet bottleneck with the stride on the 3x3 conv; `dilation` for the 3x3."""

  def __init__(self, c_in: int, planes: int, stride: int, dilation: int, down: bool):
    super().__init__()
    self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation,
                           bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.downsample = (nn.Sequential(nn.Conv2d(c_in, planes * 4, 1, stride, bias=False),
                                     nn.BatchNorm2d(planes * 4)) if down else None)

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = F.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    res = x if self.downsample is None else self.downsample(x)
    return F.relu(out + res)


class TorchResnetDilated(nn.Module):
  """CSAIL ResNet-50 deep-stem encoder after `_nostride_dilate(8)`; returns 4 stages."""

  def __init__(self, stages=(3, 4, 6, 3)):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    self.conv2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(64)
    self.conv3 = nn.Conv2d(64, 128, 3, 1, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(128)
    # (planes, blocks, first (stride, dilation), rest dilation)
    plan = [(64, stages[0], (1, 1), 1), (128, stages[1], (2, 1), 1),
            (256, stages[2], (1, 1), 2), (512, stages[3], (1, 2), 4)]
    c_in = 128
    for i, (planes, n, (s, d0), d) in enumerate(plan, start=1):
      blocks = [TorchBottleneck(c_in, planes, s, d0, True)]
      blocks += [TorchBottleneck(planes * 4, planes, 1, d, False) for _ in range(n - 1)]
      setattr(self, f"layer{i}", nn.Sequential(*blocks))
      c_in = planes * 4

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    x = F.relu(self.bn2(self.conv2(x)))
    x = F.relu(self.bn3(self.conv3(x)))
    x = F.max_pool2d(x, 3, 2, 1)
    out = []
    for i in range(1, 5):
      x = getattr(self, f"layer{i}")(x)
      out.append(x)
    return out


class TorchResNetPL(nn.Module):
  """LaMa's `ResNetPL`: ImageNet normalisation, sum over stages of MSE, times weight."""

  def __init__(self, impl: nn.Module, weight: float = 1.0):
    super().__init__()
    self.impl = impl
    self.weight = weight

  def forward(self, pred, target):
    mean = torch.tensor(IMAGENET_MEAN, dtype=pred.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=pred.dtype)[None, :, None, None]
    pf = self.impl((pred - mean) / std)
    tf = self.impl((target - mean) / std)
    return torch.stack([F.mse_loss(p, t) for p, t in zip(pf, tf, strict=True)]).sum() * self.weight


def randomize_bn(module: nn.Module, generator: torch.Generator) -> None:
  """Non-trivial BN affine parameters and running statistics (defaults hide mistakes)."""
  for m in module.modules():
    if isinstance(m, nn.BatchNorm2d):
      c = m.num_features
      with torch.no_grad():
        m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=generator))
        m.bias.copy_(0.1 * torch.randn(c, generator=generator))
        m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
        m.running_var.copy_(1.0 + 0.5 * torch.rand(c, generator=generator))
