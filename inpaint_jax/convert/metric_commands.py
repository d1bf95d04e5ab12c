"""`python -m inpaint_jax.convert lpips|inception|vgg16|vgg19|ade20k_resnet50 ...`.

The converters of frozen networks (metric networks and loss backbones). They write `.npz`
weight files (see `inpaint_jax.convert.metric_nets` and `inpaint_jax.backbones.files`), not
model directories, so they are registered as whole commands.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inpaint_jax import errors
from inpaint_jax.backbones import files, resnet, vgg
from inpaint_jax.convert import metric_nets
from inpaint_jax.models.api import register_command

# Backbone kind -> PyTorch state_dict -> Flax variables.
FROM_TORCH: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "vgg16": functools.partial(vgg.variables_from_torch, depth=16),
    "vgg19": functools.partial(vgg.variables_from_torch, depth=19),
    resnet.KIND: resnet.variables_from_torch,
}


def convert_backbone_main(kind: str, argv: Sequence[str]) -> int:
  """`KIND --checkpoint PATH --output DIR`; writes DIR/KIND.npz; returns the exit status."""
  parser = errors.ArgumentParser(
      f"python -m inpaint_jax.convert {kind}",
      f"Convert the published {kind} weights (a frozen backbone of the losses) to "
      f"DIR/{kind}.npz; then set the backbone's config field path=DIR.",
      epilog=f"example:\n  python -m inpaint_jax.convert {kind} --checkpoint "
             f"{files.PUBLISHED[kind][0]} --output weights/")
  parser.add_argument("--checkpoint", required=True, metavar="FILE",
                      help=f"the published {files.PUBLISHED[kind][0]}")
  parser.add_argument("--output", required=True, metavar="DIR",
                      help=f"directory to write {kind}.npz into")
  args = parser.parse_args(list(argv))
  try:
    out = files.convert_backbone(kind, args.checkpoint, args.output, FROM_TORCH[kind])
  except (ValueError, OSError) as e:   # missing file, not a torch file, wrong keys or shapes
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}; set the backbone's config field path={args.output}")
  return 0


register_command("lpips", metric_nets.convert_lpips,
                 help="LPIPS: --vgg16 torchvision VGG-16 .pth --lin lpips linear layers "
                      "--output FILE.npz")
register_command("inception", metric_nets.convert_inception,
                 help="FID Inception: --weights pt_inception-*.pth --output FILE.npz")

for _kind, (_file, _) in files.PUBLISHED.items():
  register_command(_kind, functools.partial(convert_backbone_main, _kind),
                   help=f"frozen backbone: --checkpoint {_file} --output DIR (writes "
                        f"DIR/{_kind}.npz)")
