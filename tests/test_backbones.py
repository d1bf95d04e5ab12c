"""Frozen backbones: parameter counts, weight conversion against PyTorch, HRFPL, errors."""

import copy
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax import losses
from inpaint_jax.backbones import files as convert_backbones
from inpaint_jax.backbones import frozen, resnet, vgg
from inpaint_jax.config_lib import term
from inpaint_jax.convert import __main__ as convert_cli
from inpaint_jax.convert import metric_commands

torch = pytest.importorskip("torch", reason="PyTorch references need torch (not in CI)")
torch_refs = pytest.importorskip("torch_refs")


def _count(tree):
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def test_parameter_counts():
  # torchvision's vgg16().features / vgg19().features, and the CSAIL encoder.
  for depth, want in ((16, 14_714_688), (19, 20_024_384)):
    m = vgg.VGG(depth, outputs=("pool5",))
    shapes = jax.eval_shape(lambda m=m: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    assert _count(shapes["params"]) == want
  assert _count(resnet.variable_shapes()["params"]) == resnet.PARAM_COUNT == 23_631_808


def test_resnet_stage_shapes_output_stride_8():
  shapes = jax.eval_shape(lambda: resnet.ResNet50Dilated().init_with_output(
      jax.random.PRNGKey(0), jnp.zeros((1, 64, 48, 3)))[0])
  assert [s.shape for s in shapes] == [(1, 16, 12, 256), (1, 8, 6, 512), (1, 8, 6, 1024),
                                       (1, 8, 6, 2048)]


@pytest.fixture(scope="module")
def torch_encoder(tmp_path_factory):
  """A random CSAIL-layout encoder, its file, and the counts of the torch model."""
  torch.manual_seed(0)
  net = torch_refs.TorchResnetDilated()
  torch_refs.randomize_bn(net, torch.Generator().manual_seed(1))
  path = str(tmp_path_factory.mktemp("w") / "encoder_epoch_20.pth")
  torch.save(net.state_dict(), path)
  return net, path


SMALL = (1, 1, 2, 2)  # every layer type of the encoder (stem, downsample, both dilations)


@pytest.fixture(scope="module")
def small_encoder(tmp_path_factory):
  """The encoder with fewer blocks per stage, for the (slow on CPU) gradient checks."""
  torch.manual_seed(0)
  net = torch_refs.TorchResnetDilated(SMALL)
  torch_refs.randomize_bn(net, torch.Generator().manual_seed(1))
  path = str(tmp_path_factory.mktemp("w") / "encoder_small.pth")
  torch.save(net.state_dict(), path)
  return net, path


def _nchw(x):
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def _images(seed, n=2, size=32):
  rng = np.random.default_rng(seed)
  return rng.uniform(size=(n, size, size, 3)).astype(np.float32)


def test_torch_encoder_count_matches(torch_encoder):
  net, _ = torch_encoder
  assert sum(p.numel() for p in net.parameters()) == resnet.PARAM_COUNT


def _hrfpl_jax(path, bn_mode, pred, image, dtype=np.float32, stages=resnet.STAGES):
  """30 * HRFPL through the registry, the config recipe and `evaluate`.

  Returns:
    (value, d value / d pred, metrics, the jitted pred -> ((value, metrics), grad)).
  """
  bb = frozen.build_backbones({"resnet_pl": {"kind": "ade20k_resnet50", "path": path,
                                             "stages": stages}})
  variables = jax.tree.map(lambda v: jnp.asarray(v, dtype), bb["resnet_pl"].load())
  modules = {"resnet_pl": bb["resnet_pl"].module}

  # The weights and the image are arguments, not constants: XLA would constant-fold the
  # whole image branch at compile time.
  def loss(pred, image_, variables):
    x = losses.LossInputs(image=image_, mask=jnp.zeros(image_.shape[:3] + (1,), dtype),
                          outputs={"pred": pred},
                          frozen=frozen.bind(modules, {"resnet_pl": variables}))
    return losses.evaluate({"hrfpl": term("resnet_pl", 30.0, bn_mode=bn_mode)}, x)

  jitted = jax.jit(jax.value_and_grad(loss, has_aux=True))
  image_ = jnp.asarray(image, dtype)
  fn = lambda p: jitted(p, image_, variables)
  (value, metrics), grad = fn(jnp.asarray(pred, dtype))
  return float(value), np.asarray(grad), metrics, fn


def _hrfpl_torch(net, bn_mode, pred, image, dtype):
  ref = torch_refs.TorchResNetPL(copy.deepcopy(net).to(dtype), weight=30.0)
  ref.train(bn_mode == "train")  # train: batch statistics (and a running-stat update we drop)
  p = _nchw(pred).to(dtype).requires_grad_(True)
  value = ref(p, _nchw(image).to(dtype))
  value.backward()
  return value.item(), p.grad.numpy().transpose(0, 2, 3, 1)


def _rel(a, b):
  return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_hrfpl_matches_official_resnet_pl(small_encoder, bn_mode):
  """HRFPL = LaMa's ResNetPL (weight 30) on random weights: value and gradient, float64.

  Compared in float64 because the train-mode gradient is ill-conditioned in float32: each
  train-mode BatchNorm projects the incoming gradient off the normalised features it is
  nearly parallel to, and PyTorch's CPU kernels accumulate BatchNorm sums in double while
  XLA accumulates in float32, so float32 results differ by up to ~1e-2 for reasons that are
  not the loss definition. The encoder has fewer blocks per stage here (`SMALL`, every
  layer type) to keep the compile short; the full ResNet-50 is compared with PyTorch in
  `test_converter_round_trip_and_converted_dir`.
  """
  net, path = small_encoder
  pred, image = _images(2), _images(3)
  with jax.enable_x64(True):
    got, grad, metrics, fn = _hrfpl_jax(path, bn_mode, pred, image, np.float64, SMALL)
    # The prediction equal to the image: zero loss and zero gradient.
    (zero, _), zero_grad = fn(jnp.asarray(image, np.float64))
    assert abs(float(zero)) < 1e-12 and float(jnp.max(jnp.abs(zero_grad))) < 1e-12
  want, want_grad = _hrfpl_torch(net, bn_mode, pred, image, torch.float64)
  rel, grad_rel = abs(got - want) / abs(want), _rel(grad, want_grad)
  print(f"\nHRFPL bn_mode={bn_mode}: value {got:.10g} vs official {want:.10g} "
        f"(rel {rel:.1e}), gradient rel {grad_rel:.1e}")
  assert rel < 1e-4 and grad_rel < 1e-4
  assert set(metrics) == {"hrfpl", "hrfpl/layer1", "hrfpl/layer2", "hrfpl/layer3",
                          "hrfpl/layer4", "total"}


def test_converter_round_trip_and_converted_dir(torch_encoder, tmp_path):
  net, path = torch_encoder
  sd = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = resnet.variables_from_torch(sd)
  back = resnet.variables_to_torch(variables)
  assert set(back) == {k for k in sd if not k.endswith("num_batches_tracked")}
  for k, v in back.items():
    np.testing.assert_array_equal(v, sd[k])
  # A "module." prefix (DataParallel) and extra keys are accepted.
  extra = {"module." + k: v for k, v in sd.items()} | {"module.fc.weight": np.zeros((2, 2))}
  np.testing.assert_array_equal(
      resnet.variables_from_torch(extra)["params"]["layer4_2"]["conv3"]["kernel"],
      variables["params"]["layer4_2"]["conv3"]["kernel"])
  rc = metric_commands.convert_backbone_main(
      "ade20k_resnet50", ["--checkpoint", path, "--output", str(tmp_path / "conv")])
  assert rc == 0 and os.path.isfile(tmp_path / "conv" / "ade20k_resnet50.npz")
  assert metric_commands.convert_backbone_main(
      "vgg16", ["--checkpoint", str(tmp_path / "none.pth"), "--output", str(tmp_path / "x")]) == 2
  # The same through the project's one convert command.
  with pytest.raises(SystemExit) as done:
    convert_cli.main(["ade20k_resnet50", "--checkpoint", path, "--output", str(tmp_path / "c2")])
  assert done.value.code == 0 and os.path.isfile(tmp_path / "c2" / "ade20k_resnet50.npz")
  loaded = resnet.load_variables(str(tmp_path / "conv"))
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)
  # The converted weights reproduce the PyTorch features (eval mode).
  x = _images(4)
  with torch.no_grad():
    net.eval()
    want = [f.numpy().transpose(0, 2, 3, 1) for f in net(_nchw(x))]
  got = resnet.ResNet50Dilated().apply(loaded, jnp.asarray(x), train=False)
  for g, w in zip(got, want, strict=True):
    np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4 * np.abs(w).max())


def test_missing_key_is_an_error(torch_encoder):
  net, _ = torch_encoder
  sd = {k: v.numpy() for k, v in net.state_dict().items() if k != "layer3.5.bn2.weight"}
  with pytest.raises(ValueError, match=r"missing.*layer3_5\.bn2\.scale"):
    resnet.variables_from_torch(sd)


@pytest.mark.parametrize("kind,name,url_part", [
    ("ade20k_resnet50", "encoder_epoch_20.pth", "sceneparsing.csail.mit.edu"),
    ("vgg16", "vgg16-397923af.pth", "download.pytorch.org"),
    ("vgg19", "vgg19-dcbb9e9d.pth", "download.pytorch.org")])
def test_missing_weights_message(tmp_path, kind, name, url_part):
  bb = frozen.build_backbones({"pl": {"kind": kind, "path": str(tmp_path / "none.pth")}})
  with pytest.raises(ValueError) as e:
    bb["pl"].load()
  msg = str(e.value)
  assert "\n" not in msg and name in msg and url_part in msg and "--config.frozen.pl.path" in msg


def test_vgg_converted_npz(tmp_path):
  torch.manual_seed(5)
  sd = {}
  c_in = 3
  for index, c_out in zip(vgg.conv_indices(16), [c for b in vgg.CONFIGS[16] for c in b],
                          strict=True):
    sd[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3) * 0.05
    sd[f"features.{index}.bias"] = torch.randn(c_out) * 0.05
    c_in = c_out
  path = str(tmp_path / "vgg16.pth")
  torch.save(sd, path)
  from_pth = vgg.load_torchvision(path, 16)
  convert_backbones.convert_backbone("vgg16", path, str(tmp_path / "d"),
                                     lambda s: {"params": vgg.params_from_torch(s, 16)})
  from_dir = vgg.load_torchvision(str(tmp_path / "d"), 16)
  jax.tree.map(np.testing.assert_array_equal, from_dir, from_pth)
