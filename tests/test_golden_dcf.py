"""Golden test of the DCF generator, discriminator, weight mapping and loss recipe.

`tests/data/dcf_small.npz` holds a narrow DCF (widths 12..32, hidden 12, D filters 8)
made by a PyTorch reference that reproduces the official modules exactly: weights
(official state_dict keys, OIHW / IOHW), two photos at 64x64 (ImageNet-normalised, mask
1 = hole), eval and train outputs, stage outputs, taps, the importance scores and the
0/1 gates PyTorch chose, gradients, BatchNorm buffers after a train forward, the
discriminator's outputs, spectral-norm vectors and gradient, a non-square 56x40 case,
the outputs with every switch on "fixed", and each official loss value.

The official gates are decided by float rounding (the four scores differ in their last
bits), so our own float gates differ from PyTorch's: every comparison with this file runs
`importance_gate="official"`, injects the stored gates and checks the scores.

`tests/data/dcf_exact_gates.npz` holds the same weights and case-1 batch run by the
official modules with every gate forced to 1 (the exact-arithmetic gate): eval and
train outputs, the L1 loss, gradients and every BatchNorm buffer after one train step,
where the second fusion pass of stages 0 and 1 updates its BN a second time
(`num_batches_tracked` 10), plus the 6 buffers a port that skips the second pass
without the second update would get (count 9). The default `importance_gate="all"`
must match it without injected gates. Run with `pytest -s` to see the measured errors.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import losses
from inpaint_jax.models.dcf import torch_keys as convert_dcf
from inpaint_jax.models.dcf.network import (
    DCF,
    DCFPatchDiscriminator,
    dynamic_scales,
    mask_geometry,
)
from tests import helpers

pytestmark = pytest.mark.usefixtures("fast_compile")

GOLDEN = pathlib.Path(__file__).parent / "data" / "dcf_small.npz"
EXACT = pathlib.Path(__file__).parent / "data" / "dcf_exact_gates.npz"
ATOL = 1e-5        # final / raw outputs, blend map
TAP_RTOL = 1e-5    # taps and stage features, relative to the tap's largest value (up to 17)
STAGE_ATOL = 5e-5  # stage outputs (three attention stages and a x16 upsampling)
SCORE_ATOL = 1e-6
GRAD_RTOL = 1e-4   # relative to the largest reference entry
# input_conv's gradient crosses every train-mode BatchNorm (the bottleneck's sees 32
# values per channel, the stages' 32 too). Our float32 gradient differs from PyTorch's by
# a relative 5.9e-4, our float64 one by 5.4e-6: the precision is lost in our float32
# backward pass (not located yet); the heads' and attention gradients agree to 1.5e-5.
# With exact gates (dcf_exact_gates.npz) the same gradient agrees to 3.1e-6.
INPUT_GRAD_RTOL = 1e-3
LOSS_RTOL = 1e-5
BN_MOMENTUM = 0.1
FUSION_BNS = tuple(f"progressive_refinement.coarse_fusion.{s}.post_attention.1" for s in (0, 1))


def nhwc(a: np.ndarray) -> jnp.ndarray:
  return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def err(got, ref: np.ndarray) -> float:
  ref = np.transpose(ref, (0, 2, 3, 1)) if ref.ndim == 4 else ref
  return float(np.max(np.abs(np.asarray(got) - ref)))


def load_dcf_config(arg: str):
  module = helpers.config_module("dcf")
  return module.get_config(arg)


@pytest.fixture(scope="module")
def golden():
  z = dict(np.load(GOLDEN))
  meta = json.loads(str(z["meta_json"]))
  sd = {k: v for k, v in z.items() if "/" not in k and k != "meta_json"}
  dsd = {k[len("disc/"):]: v for k, v in z.items() if k.startswith("disc/model.")}
  fields = convert_dcf.infer_generator_fields(sd)
  gen = DCF(**fields, importance_gate="official")   # PyTorch's float gates are injected
  variables = convert_dcf.generator_variables(sd)
  filters, d_vars = convert_dcf.discriminator_variables(dsd)
  disc = DCFPatchDiscriminator(filters=filters, model_space=True)
  return z, meta, fields, gen, variables, disc, d_vars


@pytest.fixture(scope="module")
def eval_run(golden):
  z, _, _, gen, variables, _, _ = golden
  gates = jnp.stack([jnp.asarray(z[f"eval_taps/stage{s}/gates"]) for s in (0, 1)])
  fn = jax.jit(lambda v, x, m, g: gen.apply(v, x, m, train=False, gates=g, model_space=True,
                                             mutable=["intermediates"]))
  out, taps = fn(variables, nhwc(z["io/image"]), nhwc(z["io/mask"]), gates)
  return out, {k: v[0] for k, v in taps["intermediates"].items()}


def test_structure_and_mask_analysis(golden):
  z, meta, fields, _, variables, _, d_vars = golden
  assert fields == dict(input_channels=3, encoder_depths=(12, 16, 24, 32),
                        decoder_depths=(32, 24, 16, 12), hidden_dim=12, refinement_stages=3)
  count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
  assert count(variables["params"]) == meta["param_count_generator"] == 125822
  assert count(d_vars["params"]) == meta["param_count_discriminator"] == 11193
  scales_of = jax.jit(lambda b: dynamic_scales(b, 3, 8, 128, 0.5))
  for case, mask in (("case1", z["io/mask"]), ("case2", z["io2/mask"])):
    centres, sizes = jax.jit(mask_geometry)(nhwc(mask))
    np.testing.assert_array_equal(np.asarray(centres), np.float32(meta[case]["centers"]))
    assert [int(s) for s in sizes] == meta[case]["bbox_sizes"]
    scales, n = scales_of(jnp.max(sizes))
    assert int(n) == meta[case]["num_stages"]
    assert [int(s) for s in scales] == meta[case]["scales"][:3]
  # b >= 18: 3 stages, 9..17: 2, <= 8: 1.
  for b, want in ((18, 3), (17, 2), (9, 2), (8, 1), (3, 1)):
    assert int(scales_of(jnp.int32(b))[1]) == want, b
  # An empty mask counts min(H, W) // 2 and centres on the image.
  centres, sizes = jax.jit(mask_geometry)(jnp.zeros((1, 40, 24, 1)))
  assert int(sizes[0]) == 12 and np.asarray(centres).tolist() == [[20.0, 12.0]]


def _grad_rel_errors(grads, ref, keys) -> dict[str, float]:
  """{PyTorch conv key: max |our kernel gradient - the reference's| / max |reference|}."""
  rels = {}
  for key in keys:
    prefix = key.rsplit(".", 1)[0].replace(".", "_")
    want = ref[f"train/grad/{key}"].transpose(2, 3, 1, 0)   # OIHW -> HWIO
    rels[key] = float(np.max(np.abs(np.asarray(grads[prefix]["kernel"]) - want))
                      / np.abs(want).max())
  return rels


def _output_errors(out: dict, ref: dict, phase: str, features: bool = False
                   ) -> dict[str, float]:
  """Max abs errors of the generator's outputs against `ref`'s `<phase>/...` arrays.

  With `features`, the three stages' features too, relative to their largest value.
  """
  errs = {"output": err(out["output_model"], ref[f"{phase}/output"]),
          "raw": err(out["raw_model"], ref[f"{phase}/raw_output"]),
          "blend_map": err(out["blend_map"], ref[f"{phase}/blend_map"])}
  for s in range(3):
    errs[f"stage{s}"] = err(out["stages_model"][s], ref[f"{phase}/stage_outputs/{s}"])
    if features:
      r = ref[f"{phase}/stage_features/{s}"]
      errs[f"features{s}"] = err(out["stage_features"][s], r) / max(1.0, np.abs(r).max())
  return errs


def test_eval_outputs_taps_and_scores(golden, eval_run):
  z, *_ = golden
  out, taps = eval_run
  errs = _output_errors(out, z, "eval")
  print(f"\n[dcf golden eval] {errs}")
  for k in ("output", "raw", "blend_map"):
    assert errs[k] <= ATOL, k
  for s in range(3):
    assert errs[f"stage{s}"] <= STAGE_ATOL
  assert int(out["num_stages"]) == 3
  tap_refs = {"bottleneck": "bottleneck", "refine_in": "refine_in", "refined_up": "refined_up",
              "dec4": "dec4", "boundary_map": "boundary_map", "smooth_mask": "smooth_mask",
              "blend_ring": "blend_ring"}
  worst = 0.0
  for s in range(3):
    q = np.transpose(z[f"eval_taps/stage{s}/quarters"], (0, 1, 3, 4, 2))
    got = {"quarters": (taps[f"stage{s}_quarters"], q),
           "attention": (taps[f"stage{s}_attention"], z[f"eval_taps/stage{s}/attention"]),
           "fused": (taps[f"stage{s}_fused"], np.transpose(z[f"eval_taps/stage{s}/fused"],
                                                           (0, 2, 3, 1))),
           "features": (out["stage_features"][s],
                        np.transpose(z[f"eval_taps/stage{s}/features"], (0, 2, 3, 1)))}
    for name, (a, ref) in got.items():
      rel = float(np.max(np.abs(np.asarray(a) - ref))) / max(1.0, float(np.abs(ref).max()))
      worst = max(worst, rel)
      assert rel <= TAP_RTOL, (s, name, rel)
    if s < 2:
      e = float(np.max(np.abs(np.asarray(out["scores"][s]) - z[f"eval_taps/stage{s}/scores"])))
      assert e <= SCORE_ATOL, (s, e)
      np.testing.assert_array_equal(np.asarray(out["gates"][s]), z[f"eval_taps/stage{s}/gates"])
  for name, key in tap_refs.items():
    ref = np.transpose(z[f"eval_taps/{key}"], (0, 2, 3, 1))
    rel = float(np.max(np.abs(np.asarray(taps[name]) - ref))) / max(1.0, float(np.abs(ref).max()))
    worst = max(worst, rel)
    assert rel <= TAP_RTOL, (name, rel)
  print(f"[dcf golden taps] worst relative error {worst:.3g}")
  # The composite keeps the known pixels.
  hole = np.transpose(z["io/mask"], (0, 2, 3, 1))
  known = np.broadcast_to(hole == 0, out["output_model"].shape)
  np.testing.assert_array_equal(np.asarray(out["output_model"])[known],
                                np.transpose(z["io/masked_image"], (0, 2, 3, 1))[known])


def test_train_mode_gradients_and_batchnorm(golden):
  z, meta, _, gen, variables, _, _ = golden
  gates = jnp.stack([jnp.asarray(z[f"train/gates/{s}"]) for s in (0, 1)])

  def loss(params, stats, x, m, g):
    out, upd = gen.apply({"params": params, "batch_stats": stats}, x, m, train=True, gates=g,
                         model_space=True, mutable=["batch_stats"])
    value = jnp.mean(jnp.abs(out["raw_model"] - x)) + sum(
        jnp.mean(jnp.abs(s - x)) for s in out["stages_model"])
    return value, (out, upd["batch_stats"])

  (value, (out, stats)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      variables["params"], variables["batch_stats"], nhwc(z["io/image"]), nhwc(z["io/mask"]),
      gates)
  np.testing.assert_allclose(float(value), z["train/loss_l1"], rtol=LOSS_RTOL)
  assert err(out["raw_model"], z["train/raw_output"]) <= ATOL
  assert err(out["output_model"], z["train/output"]) <= ATOL
  assert err(out["blend_map"], z["train/blend_map"]) <= ATOL
  for s in range(3):
    ref = z[f"train/stage_features/{s}"]
    assert err(out["stage_features"][s], ref) <= TAP_RTOL * max(1.0, np.abs(ref).max())
  np.testing.assert_array_equal(np.asarray(out["gates"]), np.asarray(gates))
  rels = _grad_rel_errors(grads, z, meta["grad_keys"])
  for key, rel in rels.items():
    assert rel <= (INPUT_GRAD_RTOL if key.startswith("input_conv") else GRAD_RTOL), key
  worst = 0.0
  for key, ref in z.items():
    if key.startswith("train/after/") and not key.endswith("num_batches_tracked"):
      prefix, leaf = key[len("train/after/"):].rsplit(".", 1)
      got = stats[prefix.replace(".", "_")]["mean" if leaf == "running_mean" else "var"]
      worst = max(worst, float(np.max(np.abs(np.asarray(got) - ref))))
  print(f"\n[dcf golden train] grads {rels}; BN buffers {worst:.3g}")
  assert worst <= ATOL   # the gated fusion BNs updated twice, the running var unbiased


def test_non_square_and_fixed_switches(golden):
  z, _, fields, gen, variables, _, _ = golden
  gates = jnp.stack([jnp.asarray(z[f"io2/gates/{s}"]) for s in (0, 1)])
  out = jax.jit(lambda v, x, m, g: gen.apply(v, x, m, train=False, gates=g, model_space=True))(
      variables, nhwc(z["io2/image"]), nhwc(z["io2/mask"]), gates)
  assert err(out["raw_model"], z["io2/raw_output"]) <= ATOL
  assert err(out["output_model"], z["io2/output"]) <= ATOL
  for s in range(3):
    assert err(out["stages_model"][s], z[f"io2/stage_outputs/{s}"]) <= STAGE_ATOL
  for s in range(2):
    assert float(np.max(np.abs(np.asarray(out["scores"][s]) - z[f"io2/scores/{s}"]))) <= \
        SCORE_ATOL

  fixed = DCF(**fields, quarter_crops="fixed", importance_gate="all", importance_shape="fixed")
  out, taps = jax.jit(lambda v, x, m: fixed.apply(v, x, m, train=False, model_space=True,
                                                  mutable=["intermediates"]))(
      variables, nhwc(z["io/image"]), nhwc(z["io/mask"]))
  e = err(out["raw_model"], z["fixed/raw_output"])
  print(f"\n[dcf golden fixed] raw {e:.3g}")
  assert e <= ATOL
  for s in range(3):
    q = np.transpose(z[f"fixed/quarters/{s}"], (0, 1, 3, 4, 2))
    got = np.asarray(taps["intermediates"][f"stage{s}_quarters"][0])
    assert np.max(np.abs(got - q)) <= TAP_RTOL * max(1.0, np.abs(q).max())
    ref = z[f"fixed/stage_features/{s}"]
    assert err(out["stage_features"][s], ref) <= TAP_RTOL * max(1.0, np.abs(ref).max())


def test_discriminator_spectral_norm_and_d_loss(golden):
  z, _, _, _, _, disc, d_vars = golden
  real, fake = nhwc(z["io/image"]), nhwc(z["eval/output"])
  ev = jax.jit(lambda v, x: disc.apply(v, x, train=False)[0])
  assert err(ev(d_vars, real), z["disc/eval_real"]) <= ATOL
  assert err(ev(d_vars, fake), z["disc/eval_fake"]) <= ATOL
  recipe = load_dcf_config("demo").losses.discriminator

  def d_loss(params, spectral, real, fake):
    (r, _), cols = disc.apply({"params": params, "spectral": spectral}, real, train=True,
                              mutable=["spectral"])
    (f, _), cols = disc.apply({"params": params, **cols}, fake, train=True, mutable=["spectral"])
    x = losses.LossInputs(image=real, mask=jnp.zeros(real.shape[:3] + (1,)),
                          outputs={"pred": fake}, fake=(f, []), real=(r, []))
    total, _ = losses.evaluate(recipe, x)
    return total, (r, f, cols["spectral"])

  (total, (r, f, spectral)), grads = jax.jit(jax.value_and_grad(d_loss, has_aux=True))(
      d_vars["params"], d_vars["spectral"], real, fake)
  assert err(r, z["disc/train_real"]) <= ATOL
  assert err(f, z["disc/train_fake"]) <= ATOL
  for idx in (0, 2, 5):
    for leaf in ("u", "v"):
      ref = z[f"disc/train_after/model.{idx}.weight_{leaf}"]
      assert float(np.max(np.abs(np.asarray(spectral[f"model_{idx}"][leaf]) - ref))) <= 1e-6
  np.testing.assert_allclose(float(total), z["disc/train_loss_d"], rtol=LOSS_RTOL)
  ref = z["disc/train_grad/model.0.weight_orig"].transpose(2, 3, 1, 0)
  rel = float(np.max(np.abs(np.asarray(grads["model_0"]["layer"]["kernel"]) - ref))
              / np.abs(ref).max())
  print(f"\n[dcf golden D] grad {rel:.3g}")
  assert rel <= GRAD_RTOL


def test_config_recipe_gives_the_official_loss_values(golden, eval_run):
  """The `configs/dcf.py` recipe on the golden eval outputs, VGG terms off (no weights)."""
  z, *_ = golden
  out, _ = eval_run
  config = load_dcf_config("demo")   # 3 stages, no VGG weights needed
  recipe = {k: dict(v) for k, v in config.losses.generator.items()
            if v["fn"] not in ("vgg_perceptual", "gram_style")}
  # The generator outputs in [0, 1]; the recipe maps them back with space="imagenet".
  image01 = np.transpose(z["io/image"], (0, 2, 3, 1)) * np.float32((0.229, 0.224, 0.225)) + \
      np.float32((0.485, 0.456, 0.406))

  def run(out, image, mask, fake, real, step):
    x = losses.LossInputs(image=image, mask=mask, outputs=out, fake=(fake, []), real=(real, []),
                          step=step)
    return losses.evaluate(recipe, x, prefix="g/", total=config.losses.generator_total)

  out = {k: out[k] for k in ("pred", "stages", "stage_active")}
  total, m = jax.jit(run)(out, jnp.asarray(image01), nhwc(z["io/mask"]),
                          nhwc(z["disc/eval_fake"]), nhwc(z["disc/eval_real"]), jnp.int32(0))
  weight = {"charbonnier": 1.0, "pixel_fft_spatial": 1.0, "boundary": 5.0,
            "smooth_transition": 3.0, "color_consistency": 1.5, "adv_g": 0.005}
  # The reference values were computed on the stored outputs; ours differ by <= 2.6e-6.
  for key, w in weight.items():
    label = "pixel_fft" if key == "pixel_fft_spatial" else key
    np.testing.assert_allclose(float(m[f"g/{label}"]), w * z[f"loss/{key}"], rtol=2e-4,
                               err_msg=key)
  np.testing.assert_allclose(float(m["g/pixel_fft"]) + float(m["g/pixel_fft_freq"]),
                             z["loss/pixel_fft"], rtol=2e-4)
  prog = sum(float(m[f"g/progressive_{s}"]) for s in range(3))
  np.testing.assert_allclose(prog, 0.2 * z["loss/progressive"], rtol=2e-4)
  np.testing.assert_allclose(float(total), z["loss/total_without_vgg_epoch0"], rtol=2e-4)
  print(f"\n[dcf golden losses] total {float(total):.6g} vs "
        f"{float(z['loss/total_without_vgg_epoch0']):.6g}")


# ------------------------------------------------------------------------------------------
# Exact-arithmetic gates (the default `importance_gate="all"`) against dcf_exact_gates.npz.
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exact(golden):
  z, meta, fields, _, variables, _, _ = golden
  return z, meta, DCF(**fields), variables, dict(np.load(EXACT))


def test_exact_gates_default_and_scores(exact):
  z, _, gen, _, _ = exact
  assert gen.importance_gate == "all"
  assert load_dcf_config("official").generator.importance_gate == "all"
  # In exact arithmetic every score is the number of hole cells on the H/16 grid; ours
  # are that number up to rounding (which is all the official float gate reads).
  ref = np.stack([z[f"eval_taps/stage{s}/scores"] for s in (0, 1)])
  cells = np.asarray([[np.sum(m[0, ::16, ::16] > 0.5)] for m in z["io/mask"]], np.float32)
  np.testing.assert_allclose(ref, np.broadcast_to(cells[None], ref.shape), rtol=1e-6)
  with pytest.raises(ValueError, match="generator.importance_gate"):
    jax.eval_shape(lambda: gen.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                    jnp.zeros((1, 32, 32, 1)), train=False,
                                    gates=jnp.ones((2, 1, 4))))


def test_exact_gates_eval(exact):
  _, _, gen, variables, e = exact
  z = exact[0]
  out = jax.jit(lambda v, x, m: gen.apply(v, x, m, train=False, model_space=True))(
      variables, nhwc(z["io/image"]), nhwc(z["io/mask"]))
  errs = _output_errors(out, e, "eval", features=True)
  print(f"\n[dcf exact gates eval] {errs} (features relative to their largest value)")
  for k, v in errs.items():
    assert v <= (STAGE_ATOL if k.startswith("stage") else ATOL), k   # ATOL = TAP_RTOL
  assert int(out["num_stages"]) == 3
  np.testing.assert_array_equal(np.asarray(out["gates"]), np.ones((2, 2, 4)))
  # The float gates of dcf_small.npz keep fewer quarters: their output is far away.
  assert err(out["raw_model"], z["eval/raw_output"]) > 1e-2


def _bn_keys(e: dict) -> list[str]:
  return sorted({k[len("train/after/"):].rsplit(".", 1)[0] for k in e
                 if k.startswith("train/after/")})


def test_exact_gates_train_step_and_batchnorm(exact):
  """Outputs, loss, gradients and all 111 BN buffers after one train step.

  Our BN keeps no `num_batches_tracked`; the number of running-statistics updates a
  step makes is measured instead: the update is affine in the old statistic,
  new = d * old + (1 - d) * batch with d = 0.9 ** k after k updates, and train mode
  does not read the running statistics, so a second run from old + 1 gives d, hence k.
  The official count after the step is the count before (in dcf_small.npz) plus k.
  """
  z, meta, gen, variables, e = exact

  def loss(params, stats, x, m):
    out, upd = gen.apply({"params": params, "batch_stats": stats}, x, m, train=True,
                         model_space=True, mutable=["batch_stats"])
    value = jnp.mean(jnp.abs(out["raw_model"] - x)) + sum(
        jnp.mean(jnp.abs(s - x)) for s in out["stages_model"])
    return value, (out, upd["batch_stats"])

  step = jax.jit(jax.value_and_grad(loss, has_aux=True))
  x, m = nhwc(z["io/image"]), nhwc(z["io/mask"])
  stats0 = variables["batch_stats"]
  (value, (out, stats)), grads = step(variables["params"], stats0, x, m)
  shifted = jax.tree.map(lambda a: a + 1.0, stats0)
  (value2, (_, stats_shifted)), _ = step(variables["params"], shifted, x, m)
  assert float(value2) == float(value)   # train mode reads no running statistics

  np.testing.assert_allclose(float(value), e["train/loss_l1"], rtol=LOSS_RTOL)
  errs = _output_errors(out, e, "train", features=True)
  for k, v in errs.items():
    assert v <= (STAGE_ATOL if k.startswith("stage") else ATOL), k
  rels = _grad_rel_errors(grads, e, meta["grad_keys"])
  for key, rel in rels.items():
    assert rel <= GRAD_RTOL, key   # input_conv too: 3.1e-6 with exact gates

  names = _bn_keys(e)
  assert len(names) == 37
  worst, counts, skip = 0.0, {}, {}
  for name in names:
    ours = stats[name.replace(".", "_")]
    ours_shifted = stats_shifted[name.replace(".", "_")]
    old = stats0[name.replace(".", "_")]
    slope = np.asarray(ours_shifted["mean"]) - np.asarray(ours["mean"])
    k = int(round(float(np.log(np.mean(slope)) / np.log(1.0 - BN_MOMENTUM))))
    for leaf in ("mean", "var"):
      d = np.asarray(ours_shifted[leaf]) - np.asarray(ours[leaf])
      np.testing.assert_allclose(d, (1.0 - BN_MOMENTUM) ** k, atol=1e-5, err_msg=name)
    counts[name] = k
    assert float(z[f"{name}.num_batches_tracked"]) + k == \
        float(e[f"train/after/{name}.num_batches_tracked"]), name
    for leaf, torch_leaf in (("mean", "running_mean"), ("var", "running_var")):
      worst = max(worst, float(np.max(np.abs(np.asarray(ours[leaf])
                                              - e[f"train/after/{name}.{torch_leaf}"]))))
      if name in FUSION_BNS:
        # One update instead of k: old + (new - old) * (1 - 0.9) / (1 - 0.9 ** k).
        o, n = np.asarray(old[leaf]), np.asarray(ours[leaf])
        once = o + (n - o) * BN_MOMENTUM / (1.0 - (1.0 - BN_MOMENTUM) ** k)
        gate_all = e[f"train_gate_all/after/{name}.{torch_leaf}"]
        skip[f"{name}.{leaf}"] = (float(np.max(np.abs(once - gate_all))),
                                  float(np.max(np.abs(n - gate_all))))
  print(f"\n[dcf exact gates train] {errs}; grads {rels}; BN buffers {worst:.3g}; "
        f"skipping the second update (err vs the skip file, ours vs it) {skip}")
  assert worst <= ATOL
  assert {n: c for n, c in counts.items() if c != 1} == {n: 2 for n in FUSION_BNS}
  for name in FUSION_BNS:
    assert float(z[f"{name}.num_batches_tracked"]) + 1 == \
        float(e[f"train_gate_all/after/{name}.num_batches_tracked"]) == 9.0
  for key, (once_err, _) in skip.items():
    assert once_err <= ATOL, key      # skipping would give exactly the stored 6 buffers
  # ... which differ from the official ones far beyond the tolerance.
  assert max(ours_err for _, ours_err in skip.values()) > 100 * ATOL
