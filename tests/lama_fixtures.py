"""Tiny random LaMa checkpoints in the official layouts, written without PyTorch."""

from __future__ import annotations

import os
import struct
import tempfile
import zipfile

import jax
import numpy as np

from inpaint_jax import system as system_lib
from inpaint_jax.models.lama import torch_keys as lama_keys
from inpaint_jax.weights.torch_file import save_torch_state_dict

# An FFC generator with small, uneven widths: ngf 6 -> 12, 24 (global 18 = 0.75 of 24), 2 blocks.
ODD_GENERATOR = dict(ngf=6, n_downsampling=2, n_blocks=2, ratio_g=0.75, enable_lfu=False)


def _str(text: str) -> bytes:
  data = text.encode("utf-8")
  return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
  return b"J" + struct.pack("<i", value)


def save_lightning_checkpoint(path: str, state_dict: dict[str, np.ndarray],
                              epoch: int = 3, global_step: int = 1234) -> None:
  """Writes {"epoch", "global_step", "pytorch-lightning_version", "state_dict"} as torch.save.

  The state dict's pickle comes from `save_torch_state_dict`; it is wrapped in the top-level
  dict that Lightning saves (without the optimizer states, which the converter never reads).
  """
  with tempfile.TemporaryDirectory() as tmp:
    flat = os.path.join(tmp, "flat.pt")
    save_torch_state_dict(flat, state_dict)
    with zipfile.ZipFile(flat) as z:
      records = {name: z.read(name) for name in z.namelist()}
  pkl_name = next(n for n in records if n.endswith("/data.pkl"))
  inner = records[pkl_name]
  assert inner[:2] == b"\x80\x02" and inner[-1:] == b"."
  records[pkl_name] = (b"\x80\x02}(" + _str("epoch") + _int(epoch) + _str("global_step")
                       + _int(global_step) + _str("pytorch-lightning_version") + _str("1.2.9")
                       + _str("state_dict") + inner[2:-1] + b"u.")
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
    for name, data in records.items():
      z.writestr(name, data)


def random_lama_variables(config, seed: int = 0, perturb_stats: bool = True):
  """(g variables, d variables) of `config`'s networks with random weights and BN stats."""
  key = (config.to_json_best_effort(sort_keys=True), seed, perturb_stats)
  if key not in _CACHE:
    _CACHE[key] = _random_lama_variables(config, seed, perturb_stats)
  return jax.tree.map(np.copy, _CACHE[key])


_CACHE = {}


def _random_lama_variables(config, seed, perturb_stats):
  system = system_lib.build(config)
  g_model = system.nets["g"]
  image, mask = system_lib.example_inputs(config)
  g_init = jax.jit(lambda r: g_model.init({"params": r}, image, mask, train=False))
  g_all = g_init(jax.random.PRNGKey(seed))
  d_all = None
  if system.has_discriminator:
    d_init = jax.jit(lambda r: system.nets["d"].init({"params": r}, image, train=False))
    d_all = d_init(jax.random.PRNGKey(seed + 1))
  rng = np.random.default_rng(seed)

  def stats(tree):
    def f(path, x):
      x = np.asarray(x)
      if not perturb_stats:
        return x
      name = jax.tree_util.keystr(path)
      if "var" in name:
        return (0.5 + rng.random(x.shape)).astype(np.float32)
      return (0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    return jax.tree_util.tree_map_with_path(f, tree)

  g = {"params": jax.tree.map(np.asarray, g_all["params"]),
       "batch_stats": stats(g_all["batch_stats"])}
  d = None if d_all is None else jax.tree.map(np.asarray, dict(d_all))
  return g, d


def official_state_dict(g_vars, d_vars=None, with_loss_keys: bool = True
                        ) -> dict[str, np.ndarray]:
  """The Lightning module's state dict: generator.*, discriminator.*, loss networks."""
  sd = {f"generator.{k}": v for k, v in
        lama_keys.generator_variables_to_torch(g_vars, num_batches_tracked=7).items()}
  if d_vars is not None:
    sd.update({f"discriminator.{k}": v for k, v in
               lama_keys.discriminator_variables_to_torch(d_vars, num_batches_tracked=7).items()})
  if with_loss_keys:
    sd["loss_resnet_pl.impl.conv1.weight"] = np.zeros((4, 3, 3, 3), np.float32)
    sd["val_evaluator.scores.ssim.kernel"] = np.ones((1, 1, 3, 3), np.float32)
  return sd
