"""The family contract: what a model family provides besides its Flax modules.

A family is one folder under `inpaint_jax/models/` whose `__init__.py` imports its parts, so
that importing `inpaint_jax.models` registers all of them:

* generator (and discriminator) modules in `registry.GENERATORS` / `DISCRIMINATORS`. A
  generator is called as `g.apply(variables, image, mask, train=...)` with image (N, H, W, 3)
  RGB in [0, 1] and mask (N, H, W, 1), 1 = hole, and returns a dict with at least "pred"
  (N, H, W, 3) plus any extras its losses read ("coarse", "texture", "stages", ...);
* an inference adapter in `registry.INPAINTERS` under its `generator.name`: how the network
  runs on the command line's convention (`Adapter`, below);
* optionally a converter of the published PyTorch weights in `registry.CONVERTERS`
  (`register_converter`, below), and its own mask generators in `registry.MASK_GENERATORS`.

Inference adapters. The inpaint and export commands speak one convention whatever the family:
image RGB float in [0, 1], mask 1 (white, non-zero in files) = hole. An adapter translates it
to what its generator expects (mask 1 = known, ImageNet normalisation, BGR, a size multiple,
...) and back:

    @INPAINTERS.register("dfnet")
    def dfnet_adapter(config) -> Adapter:
      def forward(g_model, variables, image, mask):
        out = g_model.apply(variables, image[..., ::-1], 1.0 - mask, train=False)
        return out["pred"][..., ::-1]
      return Adapter(size_multiple=2 ** config.generator.depth, forward=forward)

The inference engine pads image and mask on the bottom/right to the size multiple, calls
`forward`, composites `mask * pred + (1 - mask) * image` and crops back.

Converters. A converter turns one published checkpoint into the variables of our modules plus
the full run config that rebuilds them; `python -m inpaint_jax.convert NAME ...` looks NAME up
and writes what it returns as a model directory:

    @register_converter("dfnet", default_config="configs/dfnet.py",
                        options={"channel_order": ("rgb", "bgr")})
    def convert_dfnet(checkpoint: str, config: ConfigDict | None, options: Options) -> Converted:
      order = options.choice("channel_order", default="bgr")
      ...
      return Converted(family="dfnet", config=config, variables={"g": g_vars},
                       source_file=checkpoint)

Arguments a converter receives:
  checkpoint: the `--checkpoint` path as given (a file or a folder: the converter decides
    which files it reads, and names the one it hashed in `Converted.source_file`).
  config: the config from `--config=FILE[:ARG]` (or the converter's `default_config`) with
    every `--config.a.b=value` override applied. The converter overwrites the fields the
    tensors determine (widths, depths, ...) and keeps the rest. None when there is neither:
    the converter then builds its own config, and the command applies the overrides to it.
  options: the family's own flags (`--channel-order bgr`), names normalised to underscores,
    values as strings; only names declared in `options=` reach it.

Errors: raise ValueError / FileNotFoundError with one message naming the file or flag, what
was wrong and what is accepted; the command prints it as one line and exits with status 2.

Converters whose output is not a model directory (metric and loss backbones written as
`.npz`) register a whole command instead: `register_command(name, run)` with
`run(argv_after_the_name) -> exit status`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import ml_collections

from inpaint_jax.registry import CONVERTERS, INPAINTERS

PyTree = Any
# (g_model, variables, image (N, H, W, 3) RGB in [0, 1], mask (N, H, W, 1) 1 = hole)
#   -> raw prediction (N, H, W, 3) RGB in [0, 1]; H and W are multiples of `size_multiple`.
ForwardFn = Callable[[nn.Module, PyTree, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Adapter:
  """A family's inference rule.

  Attributes:
    forward: the eval-mode pass in the uniform convention (jit-able, see `ForwardFn`).
    size_multiple: the network's H and W must be multiples of it.
    pad_mode: numpy `np.pad` mode for the bottom/right padding to `size_multiple`.
    min_size: smaller inputs are padded up to it (LaMa: its bottleneck must be at least 2x2
      for the reflect padding of the residual blocks).
    refine: optional LaMa-style refinement, `(g_model, variables, config, image (H, W, 3),
      mask (H, W, 1), **options) -> composite (H, W, 3)` numpy; None: `--refine` is refused.
  """

  forward: ForwardFn
  size_multiple: int
  pad_mode: str = "symmetric"
  min_size: int = 1
  refine: Callable[..., Any] | None = None


def get_adapter(config: ml_collections.ConfigDict) -> Adapter:
  """The adapter registered for `config.generator.name`."""
  return INPAINTERS.get(config.generator.name, field="generator.name")(config)


def default_forward(g_model: nn.Module, variables: PyTree, image: jax.Array,
                    mask: jax.Array) -> jax.Array:
  """The eval-mode "pred" of a generator that takes the uniform convention itself."""
  return g_model.apply(variables, image, mask, train=False)["pred"]


# --- converters ----------------------------------------------------------------------------
@dataclasses.dataclass
class Converted:
  """What a converter returns.

  Attributes:
    family: the model family ("lama", "dfnet", ...) or backbone name, recorded in the manifest;
      inference picks its adapter from `config.generator.name`.
    config: the full config that rebuilds the networks with `system.build` (None for a
      backbone that has no run config).
    variables: net name -> Flax variables ({"params": ..., "batch_stats": ...} of numpy
      arrays); "g" for the generator (or the backbone), "d" for a discriminator when the
      checkpoint has one.
    source_file: the file the weights were read from (its sha256 goes into the manifest).
    extra_manifest: more JSON-serialisable entries for `manifest.json` (inferred settings,
      the original training config, ...).
  """

  family: str
  config: ml_collections.ConfigDict | None
  variables: dict[str, PyTree]
  source_file: str | None = None
  extra_manifest: dict[str, Any] = dataclasses.field(default_factory=dict)


class Options(dict):
  """A converter's own flags: name (underscores) -> string value."""

  def choice(self, name: str, *, default: str, choices: tuple[str, ...] | None = None) -> str:
    value = self.get(name, default)
    if choices is not None and value not in choices:
      raise ValueError(f"--{name.replace('_', '-')}={value!r} is not accepted; accepted: "
                       f"{', '.join(choices)}")
    return value

  def flag(self, name: str, *, default: bool = False) -> bool:
    value = self.get(name)
    if value is None:
      return default
    if value.lower() in ("1", "true", "yes"):
      return True
    if value.lower() in ("0", "false", "no"):
      return False
    raise ValueError(f"--{name.replace('_', '-')}={value!r} is not accepted; accepted: true, "
                     f"false")


ConvertFn = Callable[[str, ml_collections.ConfigDict | None, Options], Converted]


@dataclasses.dataclass(frozen=True)
class Converter:
  """A registered converter.

  Attributes:
    fn: `(checkpoint, config_or_None, options) -> Converted` (None for a command).
    options: accepted family flag name (underscores) -> its accepted values (None: any).
    default_config: config file used when `--config` is absent, relative to the source tree
      (e.g. "configs/lama.py"); None: the converter builds its config itself.
    help: one line for `--help`.
    command: `run(argv) -> exit status` for a converter with its own flags and output.
  """

  fn: ConvertFn | None
  options: Mapping[str, tuple[str, ...] | None]
  default_config: str | None
  help: str
  command: Callable[[list[str]], int] | None = None


def register_converter(name: str, *, options: Mapping[str, tuple[str, ...] | None] | None = None,
                       default_config: str | None = None, help: str = ""
                       ) -> Callable[[ConvertFn], ConvertFn]:
  """Decorator: registers `fn` in `registry.CONVERTERS` under `name`; returns `fn` unchanged."""

  def deco(fn: ConvertFn) -> ConvertFn:
    CONVERTERS.register(name)(Converter(fn=fn, options=dict(options or {}),
                                        default_config=default_config,
                                        help=help or (fn.__doc__ or "").strip().split("\n")[0]))
    return fn

  return deco


def register_command(name: str, run: Callable[[list[str]], int], *, help: str = "") -> None:
  """Registers a converter that parses its own arguments and writes its own output."""
  CONVERTERS.register(name)(Converter(fn=None, options={}, default_config=None,
                                      help=help or (run.__doc__ or "").strip().split("\n")[0],
                                      command=run))
