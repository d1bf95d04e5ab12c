"""Writes the PyTorch fixtures that tests/test_torch_file.py reads (needs torch; tests do not).

The project never depends on torch, so the fixtures are generated once with a scratch
install and committed:

  pip install --target /tmp/torchref torch
  PYTHONPATH=/tmp/torchref python tests/data/make_torch_fixtures.py

It writes, next to this script:

* `tiny_torch.pt`: `torch.save` (zip format) of a state dict covering every dtype the reader
  supports, a non-contiguous view sharing its base's storage, an offset slice, a 0-d tensor,
  an empty tensor, an `nn.Parameter`, and a uint16 tensor (saved through `_rebuild_tensor_v3`
  with an untyped storage).
* `tiny_torch_legacy.pt`: the same without uint16, in the legacy (torch < 1.6) format.
* `tiny_lightning.ckpt`: a PyTorch Lightning-like checkpoint (epoch, global_step,
  `state_dict` with `generator.` and `discriminator.` names, Adam optimizer state,
  callbacks, and hyper_parameters pickled as Lightning's `AttributeDict` and an
  OmegaConf-like `DictConfig`, which the reader must turn into placeholders).
* `torch_fixtures_expected.npz`: the expected arrays, as `torch.Tensor.numpy()` gives them
  (bfloat16 widened to float32), under `pt/<name>`, `legacy/<name>` and `ckpt/<name>`.

torch.save records a random serialization id, so regenerated files differ byte-wise but not
in content.
"""

import collections
import pathlib
import sys
import types

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent


def _fake_class(module: str, name: str, base: type = object) -> type:
  """A class that pickles under `module.name`, as if that package were installed."""
  parts = module.split(".")
  for i in range(1, len(parts) + 1):
    sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
  cls = type(name, (base,), {"__module__": module, "__qualname__": name})
  setattr(sys.modules[module], name, cls)
  return cls


def tiny_state_dict() -> dict[str, torch.Tensor]:
  g = torch.Generator().manual_seed(0)
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8
  return collections.OrderedDict(
      f32=torch.randn(2, 3, generator=g),
      f16=torch.randn(2, 3, generator=g).half(),
      # bfloat16 values that are not exactly representable in float16, plus extremes.
      bf16=torch.tensor([1.0, -3.140625, 1e-30, 3e38, -0.0], dtype=torch.bfloat16),
      bf16_t=torch.randn(3, 2, generator=g).bfloat16().t(),
      f64=torch.tensor([1 / 3, -2.5e-300], dtype=torch.float64),
      i64=torch.tensor([-(2**40), 0, 2**62 + 7]),
      i32=torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
      u8=torch.tensor([0, 7, 255], dtype=torch.uint8),
      bool=torch.tensor([[True, False], [False, True]]),
      u16=torch.tensor([1, 258, 65535], dtype=torch.uint16),
      scalar=torch.tensor(2.5),
      empty=torch.zeros(0, 3),
      base=base,
      view_t=base.t(),  # non-contiguous, same storage as `base`
      view_slice=base[1:3, ::2],  # storage offset and strides
      param=torch.nn.Parameter(torch.full((2, 2), 0.5)),
  )


def lightning_checkpoint() -> dict:
  g = torch.Generator().manual_seed(1)
  state_dict = collections.OrderedDict([
      ("generator.model.1.ffc.convl2l.weight", torch.randn(4, 3, 3, 3, generator=g)),
      ("generator.model.1.bn_l.running_mean", torch.randn(4, generator=g)),
      ("generator.model.1.bn_l.num_batches_tracked", torch.tensor(10)),
      ("discriminator.model0.0.weight", torch.randn(2, 3, 4, 4, generator=g)),
      ("discriminator.model0.0.bias", torch.randn(2, generator=g)),
  ])
  attribute_dict = _fake_class("pytorch_lightning.utilities.parsing", "AttributeDict", dict)
  dict_config = _fake_class("omegaconf.dictconfig", "DictConfig")
  config = dict_config()
  config.__dict__["_content"] = {"generator": {"kind": "ffc_resnet", "ngf": 64}}
  hparams = attribute_dict(config=config, lr=1e-3, betas=(0.9, 0.999))
  optimizer_state = {
      "state": {
          0: {"step": torch.tensor(10.0), "exp_avg": torch.randn(4, 3, 3, 3, generator=g),
              "exp_avg_sq": torch.rand(4, 3, 3, 3, generator=g)},
      },
      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0]}],
  }
  return {
      "epoch": 3,
      "global_step": 10,
      "pytorch-lightning_version": "1.2.9",
      "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.25),
                                        "best_model_path": "/ckpt/best.ckpt"}},
      "state_dict": state_dict,
      "optimizer_states": [optimizer_state],
      "lr_schedulers": [],
      "hyper_parameters": hparams,
  }


def _numpy(t: torch.Tensor) -> np.ndarray:
  t = t.detach()
  return (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy()


def main() -> None:
  expected = {}
  sd = tiny_state_dict()
  torch.save(sd, HERE / "tiny_torch.pt")
  expected.update({f"pt/{k}": _numpy(v) for k, v in sd.items()})

  legacy = collections.OrderedDict((k, v) for k, v in sd.items() if v.dtype != torch.uint16)
  torch.save(legacy, HERE / "tiny_torch_legacy.pt", _use_new_zipfile_serialization=False)
  expected.update({f"legacy/{k}": _numpy(v) for k, v in legacy.items()})

  ckpt = lightning_checkpoint()
  torch.save(ckpt, HERE / "tiny_lightning.ckpt")
  expected.update({f"ckpt/{k}": _numpy(v) for k, v in ckpt["state_dict"].items()})
  expected["ckpt_opt/exp_avg"] = _numpy(ckpt["optimizer_states"][0]["state"][0]["exp_avg"])

  np.savez(HERE / "torch_fixtures_expected.npz", **expected)
  for name in ("tiny_torch.pt", "tiny_torch_legacy.pt", "tiny_lightning.ckpt",
               "torch_fixtures_expected.npz"):
    print(name, (HERE / name).stat().st_size, "bytes")


if __name__ == "__main__":
  main()
