"""Golden test of the LaMa generator port and its PyTorch weight converter.

`tests/data/lama_ffc_small.npz` holds a small
LaMa generator (ngf 12, 2 blocks) with weights, inputs and outputs from a
PyTorch reference that reproduces the official code exactly. Run with
`pytest -s` to see the measured max errors.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models.lama.network import FFCResNetGenerator
from inpaint_jax.models.lama.torch_keys import (
  generator_variables_from_torch,
  generator_variables_to_torch,
)

GOLDEN = pathlib.Path(__file__).parent / "data" / "lama_ffc_small.npz"
ATOL = 1e-4        # outputs, taps, BN running stats
GRAD_RTOL = 1e-4   # gradients, relative to the largest reference entry


def nhwc(a: np.ndarray) -> jnp.ndarray:
  return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def max_err(got, ref_nchw: np.ndarray) -> float:
  return float(np.max(np.abs(np.asarray(got) - np.transpose(ref_nchw, (0, 2, 3, 1)))))


@pytest.fixture(scope="module")
def golden():
  data = dict(np.load(GOLDEN))
  state_dict = {k: v for k, v in data.items() if k.startswith("model.")}
  variables = generator_variables_from_torch(state_dict, n_downsampling=3)
  gen = FFCResNetGenerator(ngf=12, n_downsampling=3, n_blocks=2)
  return data, state_dict, variables, gen


def test_input_contract(golden):
  data, *_ = golden
  img, msk = data["io/image"], data["io/mask"]
  np.testing.assert_array_equal(np.concatenate([img * (1 - msk), msk], axis=1), data["io/input"])


def test_eval_output_and_taps(golden):
  data, _, variables, gen = golden
  out, state = jax.jit(functools.partial(gen.apply, train=False, mutable=["intermediates"]))(
      variables, nhwc(data["io/image"]), nhwc(data["io/mask"]))
  err = max_err(out["pred"], data["io/output_eval"])
  print(f"\n[golden] io/output_eval max abs err {err:.3g}")
  assert err <= ATOL
  taps = state["intermediates"]
  names = sorted(k[len("eval_taps/"):] for k in data if k.startswith("eval_taps/"))
  assert names == sorted(taps)
  for name in names:
    err = max_err(taps[name][0], data[f"eval_taps/{name}"])
    print(f"[golden] eval_taps/{name} max abs err {err:.3g}")
    assert err <= ATOL, name


def test_eval_non_square(golden):
  data, _, variables, gen = golden
  out = jax.jit(functools.partial(gen.apply, train=False))(
      variables, nhwc(data["io2/image"]), nhwc(data["io2/mask"]))
  assert out["pred"].shape == (1, 56, 72, 3)
  err = max_err(out["pred"], data["io2/output_eval"])
  print(f"\n[golden] io2/output_eval (56x72) max abs err {err:.3g}")
  assert err <= ATOL


@pytest.mark.parametrize("io", ["io", "io2"])
def test_eval_output_matmul_dft(golden, io):
  """`fft_impl="matmul"` (the ONNX export's Fourier units): same weights, same tolerance."""
  data, _, variables, gen = golden
  gen = gen.clone(fft_impl="matmul")
  out = jax.jit(functools.partial(gen.apply, train=False))(
      variables, nhwc(data[f"{io}/image"]), nhwc(data[f"{io}/mask"]))
  err = max_err(out["pred"], data[f"{io}/output_eval"])
  print(f"\n[golden] {io}/output_eval with fft_impl=matmul max abs err {err:.3g}")
  assert err <= ATOL


def test_train_output_bn_stats_and_grads(golden):
  data, _, variables, gen = golden
  img, msk = nhwc(data["io/image"]), nhwc(data["io/mask"])

  @jax.jit
  def step(params):
    def loss_fn(p):
      out, upd = gen.apply({"params": p, "batch_stats": variables["batch_stats"]}, img, msk,
                           train=True, mutable=["batch_stats"])
      return jnp.mean(jnp.abs(out["pred"] - img)), (out["pred"], upd["batch_stats"])
    return jax.value_and_grad(loss_fn, has_aux=True)(params)

  (loss, (pred, new_stats)), grads = step(variables["params"])

  err = max_err(pred, data["io/output_train"])
  print(f"\n[golden] io/output_train max abs err {err:.3g}")
  assert err <= ATOL
  loss_err = abs(float(loss) - float(data["train/loss_l1"]))
  print(f"[golden] train/loss_l1 abs err {loss_err:.3g}")
  assert loss_err <= ATOL

  after = generator_variables_to_torch({"params": variables["params"],
                                        "batch_stats": new_stats})
  keys = [k for k in data if k.startswith("train/after/") and "num_batches" not in k]
  assert len(keys) == 48
  stat_err = max(float(np.max(np.abs(after[k[len("train/after/"):]] - data[k]))) for k in keys)
  print(f"[golden] train/after running_mean/var ({len(keys)} buffers) max abs err {stat_err:.3g}")
  assert stat_err <= ATOL

  torch_grads = generator_variables_to_torch({"params": grads})
  for key in (k for k in data if k.startswith("train/grad/")):
    ref = data[key]
    got = torch_grads[key[len("train/grad/"):]]
    assert got.shape == ref.shape
    abs_err = float(np.max(np.abs(got - ref)))
    rel_err = abs_err / float(np.max(np.abs(ref)))
    print(f"[golden] {key} max abs err {abs_err:.3g} (rel {rel_err:.3g})")
    assert abs_err <= ATOL and rel_err <= GRAD_RTOL, key


def test_converter_round_trip(golden):
  _, state_dict, variables, _ = golden
  back = generator_variables_to_torch(variables, num_batches_tracked=0)
  assert set(back) == set(state_dict)
  for k, v in state_dict.items():
    if not k.endswith("num_batches_tracked"):
      np.testing.assert_array_equal(back[k], v, err_msg=k)
  # Layouts: OIHW conv, IOHW ConvTranspose, HWIO-like on our side.
  assert variables["params"]["up_0"]["kernel"].shape == (3, 3, 96, 48)
  assert variables["params"]["init"]["ffc"]["convl2l"]["kernel"].shape == (7, 7, 4, 12)


def test_converter_lightning_prefix(golden):
  _, state_dict, variables, _ = golden
  lightning = {f"generator.{k}": v for k, v in state_dict.items()}
  lightning["discriminator.model0.0.weight"] = np.zeros((4, 3, 4, 4), np.float32)
  lightning["loss_resnet_pl.impl.conv1.weight"] = np.zeros((1,), np.float32)
  conv = generator_variables_from_torch(lightning)  # n_blocks inferred
  jax.tree.map(np.testing.assert_array_equal, conv, variables)


def test_converter_errors(golden):
  _, state_dict, _, _ = golden
  bad = dict(state_dict)
  del bad["model.5.conv1.ffc.convl2g.weight"]
  bad["model.5.conv1.extra.weight"] = np.zeros(3, np.float32)
  bad["model.18.weight"] = np.zeros((3, 12, 5, 5), np.float32)
  with pytest.raises(ValueError) as e:
    generator_variables_from_torch(bad)
  msg = str(e.value)
  assert "missing keys (1)" in msg and "model.5.conv1.ffc.convl2g.weight" in msg
  assert "unexpected keys (1)" in msg and "model.5.conv1.extra.weight" in msg
  assert "model.18.weight: expected (3, 12, 7, 7), got (3, 12, 5, 5)" in msg
