"""`python -m inpaint_jax.convert lpips|inception|vgg16|vgg19|ade20k_resnet50 ...`.

The converters of frozen networks (metric networks and loss backbones). They write
`.npz` weight files (see `inpaint_jax.convert.metric_nets` and
`inpaint_jax.convert.backbones`), not model directories, so they are registered as
whole commands.
"""

from __future__ import annotations

import functools

from inpaint_jax.convert import backbones, metric_nets
from inpaint_jax.convert.api import register_command

register_command("lpips", metric_nets.convert_lpips,
                 help="LPIPS: --vgg16 torchvision VGG-16 .pth --lin lpips linear layers "
                      "--output FILE.npz")
register_command("inception", metric_nets.convert_inception,
                 help="FID Inception: --weights pt_inception-*.pth --output FILE.npz")

for _kind, (_file, _) in backbones.PUBLISHED.items():
  register_command(_kind, functools.partial(backbones.convert_main, _kind),
                   help=f"frozen backbone: --checkpoint {_file} --output DIR (writes "
                        f"DIR/{_kind}.npz)")
