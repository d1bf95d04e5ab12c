"""The `dfnet` converter: an official DFNet checkpoint -> a model directory.

  python -m inpaint_jax.convert dfnet --checkpoint model_places2.pth --output models/places2
  python -m inpaint_jax.convert dfnet --checkpoint mine.pth --output DIR --channel-order rgb

The release is a bare generator state_dict (what the official `test.py` loads), saved in
torch's legacy format; it is read without torch. Every architecture field the tensors
determine is inferred (`inpaint_jax.convert.dfnet`); the rest comes from `configs/dfnet.py`
(or `--config`). `--config.data.image_size` is the size inference resizes to when an input
is not a multiple of 2**levels; it defaults to 256 when the file name contains "celeba"
and 512 otherwise, as `test.py` chooses.

`--channel-order` (bgr | rgb, default bgr) records how the weights expect colours: the
released checkpoints were run by the official test script on OpenCV's BGR images, so
`bgr` (the default) is right for them; weights trained with the later RGB training code,
or by us, take `rgb`. The inference adapter reads `config.inference.channel_order` and
flips the channels around the network, so users always pass RGB files.
"""

from __future__ import annotations

import os

import ml_collections

from inpaint_jax.config_lib import SOURCE_ROOT, load_config_file
from inpaint_jax.models.api import Converted, Options, register_converter
from inpaint_jax.models.dfnet import torch_keys as dfnet_keys
from inpaint_jax.weights.torch_file import load_state_dict

CHANNEL_ORDERS = ("bgr", "rgb")


def _default_config() -> ml_collections.ConfigDict:
  return load_config_file(os.path.join(SOURCE_ROOT, "configs", "dfnet.py") + ":places2")


@register_converter("dfnet", default_config="configs/dfnet.py",
                    options={"channel_order": CHANNEL_ORDERS},
                    help="official DFNet: a bare generator state_dict (.pth, legacy or zip "
                         "format); --channel-order bgr (released weights) | rgb")
def convert_dfnet(checkpoint: str, config: ml_collections.ConfigDict | None,
                  options: Options) -> Converted:
  """Official DFNet state_dict -> our generator variables and a config that rebuilds it."""
  order = options.choice("channel_order", default="bgr", choices=CHANNEL_ORDERS)
  if os.path.isdir(checkpoint):
    raise ValueError(f"--checkpoint {checkpoint}: expected the .pth file (a bare DFNet "
                     f"state_dict), got a folder")
  sd = load_state_dict(checkpoint)
  if any(k.startswith("generator.") for k in sd):  # a training checkpoint with a prefix
    sd = {k[len("generator."):]: v for k, v in sd.items() if k.startswith("generator.")}
  norm = None
  if config is not None and config.get("generator", {}).get("norm") in ("instance", "none"):
    norm = config.generator.norm
  try:
    fields, variables = dfnet_keys.variables_from_torch(sd, norm=norm)
  except dfnet_keys.DFNetCheckpointError as e:
    raise ValueError(f"--checkpoint {checkpoint}: {e}") from None
  if config is None:
    config = _default_config()
  config.generator.update(fields)
  config.generator.coord_conv = False  # an official layout has no coordinate channels
  explicit_size = config.data.image_size not in (256, 512)
  if not explicit_size:
    config.data.image_size = 256 if "celeba" in os.path.basename(checkpoint).lower() else 512
  if config.data.image_size % 2 ** len(fields["en_ksize"]):
    config.data.image_size = 2 ** len(fields["en_ksize"])
  config.inference = ml_collections.ConfigDict(dict(channel_order=order))
  return Converted(family="dfnet", config=config, variables={"g": variables},
                   source_file=checkpoint,
                   extra_manifest={"channel_order": order,
                                   "inferred": {k: list(v) if isinstance(v, tuple) else v
                                                for k, v in fields.items()}})
