"""Shape, parameter-count and data-parallel tests of the LaMa models and layers."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import models  # noqa: F401  (registers the models)
from inpaint_jax.models.discriminators import NLayerDiscriminator
from inpaint_jax.models.lama.ffc import FourierUnit, SpectralTransform
from inpaint_jax.models.lama.network import FFCResNetGenerator
from inpaint_jax.models.lama.torch_keys import (
  discriminator_variables_from_torch,
  discriminator_variables_to_torch,
)
from inpaint_jax.models.layers import Conv, ConvTranspose, conv_sum
from inpaint_jax.models.norm import BatchNorm
from inpaint_jax.registry import DISCRIMINATORS, GENERATORS


def n_elements(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def random_variables(shapes, seed: int = 0):
  """Random values for a variable tree of ShapeDtypeStructs, without `init`.

  Jitting `init` costs seconds of XLA compile time per model on CPU (one
  threefry kernel per parameter), so tests that only need plausible weights
  fill them from numpy instead: kernels ~ N(0, 1/fan_in), BN variances in
  [0.5, 1.5], everything else ~ N(0, 0.1^2).
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == "var":
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)
    return jnp.asarray(0.1 * rng.normal(size=leaf.shape), leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def generator_shapes(gen: FFCResNetGenerator, size: int):
  img = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  msk = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
  return jax.eval_shape(functools.partial(gen.init, train=False), jax.random.key(0), img, msk)


@pytest.mark.parametrize("n_blocks, params, buffers",
                         [(9, 27_048_835, 41_984), (18, 50_975_875, 81_152)])
def test_generator_param_counts(n_blocks, params, buffers):
  shapes = generator_shapes(FFCResNetGenerator(n_blocks=n_blocks), 256)
  assert n_elements(shapes["params"]) == params
  assert n_elements(shapes["batch_stats"]) == buffers


def test_generator_lfu_param_count():
  # Count of the official modules for ngf 16, 2 blocks, enable_lfu.
  shapes = generator_shapes(FFCResNetGenerator(ngf=16, n_blocks=2, enable_lfu=True), 64)
  assert n_elements(shapes["params"]) == 571_427


def test_discriminator_param_count_and_shapes():
  d = NLayerDiscriminator()
  x = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
  shapes = jax.eval_shape(functools.partial(d.init, train=False), jax.random.key(0), x)
  assert n_elements(shapes["params"]) == 6_962_369
  logits, feats = jax.eval_shape(functools.partial(d.apply, train=False), shapes, x)
  assert logits.shape == (1, 19, 19, 1)
  assert [f.shape[1:] for f in feats] == [(129, 129, 64), (65, 65, 128), (33, 33, 256),
                                          (17, 17, 512), (18, 18, 512)]


def test_registry():
  assert GENERATORS.get("ffc_resnet") is FFCResNetGenerator
  assert DISCRIMINATORS.get("nlayer") is NLayerDiscriminator


def test_generator_small_forward_and_size_error():
  gen = FFCResNetGenerator(ngf=8, n_blocks=1)
  img = jnp.full((1, 32, 40, 3), 0.5)
  msk = jnp.zeros((1, 32, 40, 1))
  variables = random_variables(generator_shapes(gen, 32))
  out = jax.jit(functools.partial(gen.apply, train=False))(variables, img, msk)
  assert out["pred"].shape == (1, 32, 40, 3) and out["pred"].dtype == jnp.float32
  assert bool(jnp.all((out["pred"] >= 0) & (out["pred"] <= 1)))
  with pytest.raises(ValueError, match="multiples of 8"):
    gen.apply(variables, jnp.zeros((1, 30, 40, 3)), jnp.zeros((1, 30, 40, 1)), train=False)
  with pytest.raises(ValueError, match="mask"):
    gen.apply(variables, img, jnp.zeros((1, 32, 40, 3)), train=False)


def _all_eqns(jaxpr):
  """Equations of a jaxpr and of every jaxpr nested in its params (pjit, ...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, list | tuple) else [param]:
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          yield from _all_eqns(sub)


def test_fourier_unit_bf16_runs_fft_in_float32():
  fu = FourierUnit(6)
  x = jax.random.normal(jax.random.key(1), (2, 8, 10, 6))
  apply = jax.jit(functools.partial(fu.apply, train=False))
  variables = random_variables(jax.eval_shape(
      functools.partial(fu.init, train=False), jax.random.key(0), x))
  y32 = apply(variables, x)
  y16 = apply(variables, x.astype(jnp.bfloat16))
  assert y16.shape == y32.shape == (2, 8, 10, 6)
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), atol=0.1, rtol=0.05)
  jaxpr = jax.make_jaxpr(functools.partial(fu.apply, train=False))(
      variables, x.astype(jnp.bfloat16))
  ffts = [e for e in _all_eqns(jaxpr.jaxpr) if e.primitive.name == "fft"]
  assert len(ffts) == 2
  assert all(v.aval.dtype in (jnp.float32, jnp.complex64) for e in ffts for v in e.invars)


def test_lfu_path():
  st = SpectralTransform(16, enable_lfu=True)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 12))
  variables = random_variables(jax.eval_shape(
      functools.partial(st.init, train=False), jax.random.key(1), x))
  assert "lfu" in variables["params"]
  y, _ = jax.jit(functools.partial(st.apply, train=True, mutable=["batch_stats"]))(variables, x)
  assert y.shape == (2, 8, 8, 16)
  with pytest.raises(ValueError, match="square"):
    st.apply(variables, jnp.zeros((2, 8, 6, 12)), train=False)
  gen = FFCResNetGenerator(ngf=16, n_blocks=1, enable_lfu=True)
  img, msk = jnp.full((1, 32, 32, 3), 0.5), jnp.ones((1, 32, 32, 1))
  out = jax.eval_shape(functools.partial(gen.apply, train=False),
                       generator_shapes(gen, 32), img, msk)
  assert out["pred"].shape == (1, 32, 32, 3)


def _torch_conv_transpose_ref(x, w, b, s, p, op):
  """Direct scatter form of PyTorch ConvTranspose2d; x (N,H,W,I), w (I,O,k,k)."""
  n, h, wd, _ = x.shape
  k = w.shape[2]
  ho, wo = (h - 1) * s - 2 * p + k + op, (wd - 1) * s - 2 * p + k + op
  full = np.zeros((n, (h - 1) * s + k + op, (wd - 1) * s + k + op, w.shape[1]))
  for i in range(h):
    for j in range(wd):
      full[:, i * s:i * s + k, j * s:j * s + k] += np.einsum("ni,iokl->nklo", x[:, i, j], w)
  return full[:, p:p + ho, p:p + wo] + b


@pytest.mark.parametrize("k, s, p, op", [(3, 2, 1, 1), (4, 2, 1, 0), (2, 2, 0, 0), (3, 1, 1, 0)])
def test_conv_transpose_matches_pytorch_definition(k, s, p, op):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  w = rng.normal(size=(3, 2, k, k)).astype(np.float32)  # PyTorch IOHW
  b = rng.normal(size=(2,)).astype(np.float32)
  layer = ConvTranspose(2, k, strides=s, padding=p, output_padding=op)
  params = {"params": {"kernel": w.transpose(2, 3, 0, 1), "bias": b}}
  y = np.asarray(layer.apply(params, x))
  ref = _torch_conv_transpose_ref(x, w, b, s, p, op)
  assert y.shape == ref.shape
  np.testing.assert_allclose(y, ref, atol=1e-5)


def test_batchnorm_pytorch_update():
  x = jax.random.normal(jax.random.key(0), (3, 4, 5, 2)) * 2 + 1
  bn = BatchNorm()
  variables = bn.init(jax.random.key(0), x, train=True)
  assert jax.tree.map(jnp.shape, variables) == {
      "params": {"scale": (2,), "bias": (2,)}, "batch_stats": {"mean": (2,), "var": (2,)}}
  np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(2))  # init: no update
  y, upd = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  xn = np.asarray(x).reshape(-1, 2)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * xn.mean(0), atol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * xn.var(0, ddof=1), atol=1e-5)
  np.testing.assert_allclose(np.asarray(y).reshape(-1, 2),
                             (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5), atol=1e-5)


def test_discriminator_converter_round_trip():
  d = NLayerDiscriminator(ndf=8, n_layers=4)
  x = jnp.zeros((1, 32, 32, 3))
  variables = random_variables(jax.eval_shape(
      functools.partial(d.init, train=False), jax.random.key(0), x))
  sd = discriminator_variables_to_torch(variables, num_batches_tracked=0)
  assert len(sd) == 32  # as the official module's state_dict
  assert sd["model0.0.weight"].shape == (8, 3, 4, 4)
  assert sd["model4.1.running_var"].shape == (128,) and sd["model5.0.bias"].shape == (1,)
  back = discriminator_variables_from_torch({f"discriminator.{k}": v for k, v in sd.items()})
  jax.tree.map(np.testing.assert_array_equal, back, jax.tree.map(np.asarray, variables))
  del sd["model2.1.running_mean"]
  with pytest.raises(ValueError, match="model2.1.running_mean"):
    discriminator_variables_from_torch(sd)


_MULTI_DEVICE_CHILD = textwrap.dedent("""
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P, AxisType
    from inpaint_jax.models.lama import ffc
    from inpaint_jax.models.lama.network import FFCResNetGenerator

    assert jax.device_count() == 4, jax.devices()
    gen = FFCResNetGenerator(ngf=8, n_blocks=1)
    rng = np.random.default_rng(0)
    img = jnp.asarray(rng.uniform(size=(4, 32, 32, 3)), jnp.float32)
    msk = jnp.asarray(rng.uniform(size=(4, 32, 32, 1)) > 0.7, jnp.float32)
    shapes = jax.eval_shape(lambda k, i, m: gen.init(k, i, m, train=False),
                            jax.random.key(0), img[:1], msk[:1])
    # Random weights from numpy: a jitted init would cost seconds of compile time.
    v = jax.tree_util.tree_map_with_path(
        lambda p, s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape) if p[-1].key == "var"
                                 else rng.normal(size=s.shape) * 0.2, s.dtype), shapes)

    def step(params, stats, img, msk):
      def loss_fn(p):
        out, upd = gen.apply({"params": p, "batch_stats": stats}, img, msk, train=True,
                             mutable=["batch_stats"])
        return jnp.mean(jnp.abs(out["pred"] - img)), (out["pred"], upd["batch_stats"])
      return jax.value_and_grad(loss_fn, has_aux=True)(params)

    def round_trip(x):  # the bare pattern that crashes without the shard_map fix
      return ffc.irfft2(ffc.rfft2(x), x.shape[1:3])

    ref = jax.jit(step)(v["params"], v["batch_stats"], img, msk)
    x = jnp.asarray(rng.normal(size=(4, 8, 12, 6)), jnp.float32)

    mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,))
    with jax.set_mesh(mesh):
      rep, dat = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
      args = (jax.device_put(v["params"], rep), jax.device_put(v["batch_stats"], rep),
              jax.device_put(img, dat), jax.device_put(msk, dat))
      assert "shard_map" in str(jax.make_jaxpr(step)(*args)), "FFT not under shard_map"
      got = jax.block_until_ready(jax.jit(step)(*args))
      rt = jax.jit(round_trip)(jax.device_put(x, dat))
    assert got[0][1][0].sharding.spec == P("data")
    errs = jax.tree.leaves(jax.tree.map(
        lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), got, ref))
    err = max(errs)
    rt_err = float(np.max(np.abs(np.asarray(rt) - np.asarray(x))))
    print(f"MAXERR {err:.3g} ROUNDTRIP {rt_err:.3g}")
    assert err <= 1e-5, err
    assert rt_err <= 1e-5, rt_err
""")


def test_four_device_data_parallel_matches_single_device():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="4",
             PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
  env.pop("XLA_FLAGS", None)  # a device-count flag there would override ours
  proc = subprocess.run([sys.executable, "-c", _MULTI_DEVICE_CHILD], env=env, cwd=repo,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  print("\n[4 devices]", proc.stdout.strip())


class _TwoConvs(nn.Module):
  """a(x) + b(y) with two `Conv`s, or the same through `conv_sum`."""

  fused: bool

  @nn.compact
  def __call__(self, x, y):
    args = dict(features=5, kernel_size=3, padding=1, padding_mode="reflect", use_bias=True)
    if self.fused:
      return conv_sum([x, y], ["a", "b"], **args)
    return Conv(**args, name="a")(x) + Conv(**args, name="b")(y)


def test_conv_sum_equals_the_sum_of_its_convs_with_the_same_parameters():
  r = np.random.default_rng(0)
  x = jnp.asarray(r.standard_normal((2, 9, 7, 3)), jnp.float32)
  y = jnp.asarray(r.standard_normal((2, 9, 7, 4)), jnp.float32)
  ref_vars = _TwoConvs(False).init(jax.random.key(1), x, y)
  vars_ = _TwoConvs(True).init(jax.random.key(1), x, y)
  # Same names, shapes and initial values: checkpoints and converters see no difference.
  assert jax.tree.structure(vars_) == jax.tree.structure(ref_vars)
  for a, b in zip(jax.tree.leaves(vars_), jax.tree.leaves(ref_vars), strict=True):
    np.testing.assert_array_equal(a, b)
  want = _TwoConvs(False).apply(ref_vars, x, y)
  got = _TwoConvs(True).apply(ref_vars, x, y)
  assert got.shape == (2, 9, 7, 5)
  np.testing.assert_allclose(got, want, atol=1e-5)
  grad = lambda m: jax.grad(lambda v: jnp.sum(jnp.sin(m.apply(v, x, y))))(ref_vars)
  for a, b in zip(jax.tree.leaves(grad(_TwoConvs(True))), jax.tree.leaves(grad(_TwoConvs(False))),
                  strict=True):
    np.testing.assert_allclose(a, b, atol=1e-4)
