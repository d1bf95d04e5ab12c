"""Golden test of the RFR-Net generator port and its weight converter, float32 and float64.

`tests/data/rfr_small.npz` holds a narrow RFR-Net (ngf 6, tail 20, 6 recurrences, the
published structure) made by a PyTorch reference that the official modules reproduce:
its official-layout weights (NCHW / OIHW / IOHW), a 64x64 batch of two (mask 1 = known,
3 channels) and a 48x80 image, the eval and train outputs, the features and masks merged
after every recurrence, attention maps, the BatchNorm running statistics after one
train-mode forward and gradients of the mean L1 to the image. The stored values were
computed in float64 (train-mode RFR-Net is ill-conditioned in float32), so the float64
run is held to 1e-6 of each group's largest value, and the float32 run to tolerances that
leave room for float32 rounding amplified by the recurrences. `pytest -s` prints the
measured errors.
"""

from __future__ import annotations

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.models.rfr import torch_keys as convert_rfr
from inpaint_jax.models.rfr.network import RFRNet

pytestmark = pytest.mark.usefixtures("fast_compile")

GOLDEN = pathlib.Path(__file__).parent / "data" / "rfr_small.npz"
# float32: absolute tolerances, and gradients as max|diff| / max|reference|.
F32_ATOL = {"eval": 1e-4, "train": 1e-4, "io2": 1e-4, "rec_feats": 2e-4, "attn": 2e-5,
            "stats": 1e-6, "loss": 1e-6}
F32_GRAD = {"out.weight": 1e-4, "RFRModule.att.att.ratio": 1e-1}
F32_GRAD_DEEP = 2e-2   # Pconv1, Pconv21, the combiner: early layers of ~100
F64_REL = 1e-6         # every group, relative to its largest stored value


def nhwc(a: np.ndarray) -> np.ndarray:
  return np.moveaxis(a, -3, -1)


@pytest.fixture(scope="module")
def golden():
  data = dict(np.load(GOLDEN))
  meta = json.loads(str(data["meta_json"]))
  state_dict = {k: v for k, v in data.items() if "/" not in k and k != "meta_json"}
  return data, meta, state_dict


@pytest.fixture(scope="module")
def converted(golden):
  return convert_rfr.variables_from_torch(golden[2])


def _run(data, variables, fields, dtype):
  """Everything the file stores, computed by our port in `dtype`."""
  net = RFRNet(**fields)
  cast = functools.partial(jax.tree.map, lambda a: jnp.asarray(a, dtype))
  variables = cast(variables)
  image = jnp.asarray(nhwc(data["io/image"]), dtype)
  hole = 1.0 - jnp.asarray(nhwc(data["io/mask"])[..., :1], dtype)
  image2 = jnp.asarray(nhwc(data["io2/image"]), dtype)
  hole2 = 1.0 - jnp.asarray(nhwc(data["io2/mask"])[..., :1], dtype)

  @jax.jit
  def evaluate(variables):
    out, inter = net.apply(variables, image, hole, train=False, mutable=["intermediates"])
    out2 = net.apply(variables, image2, hole2, train=False)
    inter = inter["intermediates"]
    return (out["pred"], out2["pred"], jnp.concatenate(inter["rec_feats"]),
            jnp.concatenate(inter["rec_masks"]),
            inter["rec"]["RFRModule"]["att"]["att"]["attn"][0])

  @jax.jit
  def train(variables):
    def loss_fn(params):
      out, upd = net.apply({**variables, "params": params}, image, hole, train=True,
                           mutable=["batch_stats"])
      return jnp.mean(jnp.abs(out["pred"] - image)), (out["pred"], upd["batch_stats"])

    (loss, (pred, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        variables["params"])
    return loss, pred, stats, grads

  pred, pred2, feats, masks, attn = evaluate(variables)
  loss, pred_t, stats, grads = train(variables)
  return dict(eval=np.asarray(pred), io2=np.asarray(pred2), rec_feats=np.asarray(feats),
              rec_masks=np.asarray(masks), attn=[np.asarray(a) for a in attn],
              loss=float(loss), train=np.asarray(pred_t),
              stats=convert_rfr.variables_to_torch({"batch_stats": stats}, dtype),
              grads=convert_rfr.variables_to_torch({"params": grads}, dtype))


def _compare(data, meta, got) -> dict[str, float]:
  """Max abs error per group (gradients: per key, relative to the largest entry)."""
  err = {"eval": np.abs(got["eval"] - nhwc(data["io/output_eval"])).max(),
         "io2": np.abs(got["io2"] - nhwc(data["io2/output_eval"])).max(),
         "train": np.abs(got["train"] - nhwc(data["io/output_train"])).max(),
         "rec_feats": np.abs(got["rec_feats"] - nhwc(data["eval_taps/rec_feats"])).max(),
         "rec_masks": np.abs(got["rec_masks"] - nhwc(data["eval_taps/rec_masks"])).max(),
         "loss": abs(got["loss"] - float(data["train/loss_l1"]))}
  err["attn"] = max(np.abs(got["attn"][s - 1] - data[f"eval_taps/attn_step{s}"]).max()
                    for s in (1, 2, 6))
  err["stats"] = max(np.abs(got["stats"][k[len("train/after/"):]] - v).max()
                     for k, v in data.items()
                     if k.startswith("train/after/") and not k.endswith("num_batches_tracked"))
  for key in meta["grad_keys"]:
    ref = data[f"train/grad/{key}"]
    err[f"grad:{key}"] = np.abs(got["grads"][key] - ref).max() / np.abs(ref).max()
  return {k: float(v) for k, v in err.items()}


def test_converter_infers_the_config_and_round_trips(golden, converted):
  data, meta, state_dict = golden
  fields, variables = converted
  ref = meta["generator_config"]
  assert {k: fields[k] for k in ("ngf", "rec_ksize", "n_rec", "tail_ch")} == ref
  n = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(variables["params"]))
  assert n == meta["param_count"] == 279_036
  back = convert_rfr.variables_to_torch(variables)
  assert sorted(back) == sorted(state_dict)
  for k, v in state_dict.items():
    if not k.endswith("num_batches_tracked"):
      np.testing.assert_array_equal(back[k], v, err_msg=k)
  with pytest.raises(convert_rfr.RFRCheckpointError, match="unexpected tensors"):
    convert_rfr.variables_from_torch({**state_dict, "extra.weight": np.zeros(1)})
  with pytest.raises(convert_rfr.RFRCheckpointError, match="missing tensor"):
    convert_rfr.variables_from_torch({k: v for k, v in state_dict.items()
                                      if not k.startswith("tail2.bn3")})


def test_float32_matches_the_golden_file(golden, converted):
  data, meta, _ = golden
  fields, variables = converted
  err = _compare(data, meta, _run(data, variables, fields, jnp.float32))
  print("float32 errors:", {k: f"{v:.2e}" for k, v in err.items()})
  assert err["rec_masks"] == 0.0
  for group, tol in F32_ATOL.items():
    assert err[group] <= tol, (group, err[group])
  for key in meta["grad_keys"]:
    assert err[f"grad:{key}"] <= F32_GRAD.get(key, F32_GRAD_DEEP), (key, err[f"grad:{key}"])


def test_float64_matches_the_golden_file(golden, converted):
  data, meta, _ = golden
  fields, variables = converted
  with jax.enable_x64(True):
    got = _run(data, variables, fields, jnp.float64)
  assert got["eval"].dtype == np.float64
  err = _compare(data, meta, got)
  print("float64 errors (relative):", end=" ")
  scale = {"eval": data["io/output_eval"], "io2": data["io2/output_eval"],
           "train": data["io/output_train"], "rec_feats": data["eval_taps/rec_feats"],
           "attn": data["eval_taps/attn_step1"], "loss": data["train/loss_l1"]}
  rel = {k: err[k] / float(np.abs(v).max()) for k, v in scale.items()}
  stats_max = max(np.abs(v).max() for k, v in data.items() if k.startswith("train/after/"))
  rel["stats"] = err["stats"] / float(stats_max)
  rel.update({k: v for k, v in err.items() if k.startswith("grad:")})
  print({k: f"{v:.2e}" for k, v in rel.items()})
  assert err["rec_masks"] == 0.0
  for group, value in rel.items():
    assert value <= F64_REL, (group, value)
