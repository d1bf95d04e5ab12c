"""`python -m inpaint_jax.convert lpips|inception ...`: the metric networks' converters.

They write `.npz` weight files (see `inpaint_jax.convert.metric_nets`), not model
directories, so they are registered as whole commands.
"""

from __future__ import annotations

from inpaint_jax.convert import metric_nets
from inpaint_jax.convert.api import register_command

register_command("lpips", metric_nets.convert_lpips,
                 help="LPIPS: --vgg16 torchvision VGG-16 .pth --lin lpips linear layers "
                      "--output FILE.npz")
register_command("inception", metric_nets.convert_inception,
                 help="FID Inception: --weights pt_inception-*.pth --output FILE.npz")
