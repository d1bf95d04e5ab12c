"""VGG features and LPIPS against PyTorch references built in the test (random weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inpaint_jax.backbones import vgg
from inpaint_jax.convert import metric_nets
from inpaint_jax.metrics import lpips
from inpaint_jax.weights import params_file, torch_file

torch = pytest.importorskip("torch", reason="the references are PyTorch modules")
nn = torch.nn


def _torch_features(depth):
  """torchvision's `vgg.make_layers(cfgs["D" | "E"])`, written out."""
  layers, c_in = [], 3
  for block in vgg.CONFIGS[depth]:
    for c in block:
      layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=True)]
      c_in = c
    layers.append(nn.MaxPool2d(2, 2))
  return nn.Sequential(*layers)


def _save_and_read(tmp_path, name, state_dict):
  path = str(tmp_path / name)
  torch.save(state_dict, path)
  return torch_file.load_state_dict(path)


def _nchw(a):
  return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("depth", [16, 19])
def test_parameter_count(depth):
  shapes = jax.eval_shape(lambda: vgg.VGG(depth, ("pool5",)).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  want = {16: 14_714_688, 19: 20_024_384}[depth]
  assert sum(x.size for x in jax.tree.leaves(shapes)) == want
  assert sum(p.numel() for p in _torch_features(depth).parameters()) == want


@pytest.mark.parametrize("depth", [16, 19])
def test_features_match_torchvision_layout(tmp_path, depth):
  torch.manual_seed(depth)
  feats = _torch_features(depth).eval()
  sd = {f"features.{k}": v for k, v in feats.state_dict().items()}
  sd["classifier.0.weight"] = torch.zeros(2, 2)   # ignored by the converter
  params = vgg.params_from_torch(_save_and_read(tmp_path, "vgg.pth", sd), depth)
  x = np.random.default_rng(0).random((2, 37, 45, 3)).astype(np.float32)
  table = vgg.layer_table(depth)
  wanted = ("relu1_2", "pool1", "conv3_1", "pool3", "relu4_3",
            f"relu5_{len(vgg.CONFIGS[depth][4])}")
  got = vgg.VGG(depth, wanted, imagenet_normalize=True).apply({"params": params}, x)
  mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
  h = (_nchw(x) - mean) / std
  refs = {}
  with torch.no_grad():
    for name, index, _ in table:
      h = feats[index](h.clone())
      refs[name] = h.numpy().transpose(0, 2, 3, 1)
  for name in wanted:
    ref = refs[name]
    print(f"VGG-{depth} {name}: max abs error {np.abs(np.asarray(got[name]) - ref).max():.2e}")
    assert got[name].shape == ref.shape, name
    scale = max(1e-6, float(np.abs(ref).max()))
    np.testing.assert_allclose(np.asarray(got[name]) / scale, ref / scale, atol=2e-5,
                               err_msg=name)


def test_bad_layer_and_weights():
  with pytest.raises(ValueError, match="unknown VGG-16 layer"):
    vgg.VGG(16, ("relu5_4",)).init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  with pytest.raises(ValueError, match="'features.0.weight' is missing"):
    vgg.params_from_torch({}, 16)


def test_lpips_matches_reference(tmp_path):
  torch.manual_seed(0)
  feats = _torch_features(16).eval()
  lins = [torch.rand(1, c, 1, 1) for c in lpips.CHANNELS]
  _save_and_read(tmp_path, "vgg16.pth",
                 {f"features.{k}": v for k, v in feats.state_dict().items()})
  _save_and_read(tmp_path, "lin.pth", {f"lin{k}.model.1.weight": w for k, w in enumerate(lins)})
  out = str(tmp_path / "lpips.npz")
  assert metric_nets.main(["lpips", "--vgg16", str(tmp_path / "vgg16.pth"), "--lin",
                           str(tmp_path / "lin.pth"), "--output", out]) == 0
  assert metric_nets.main(["lpips", "--vgg16", str(tmp_path / "none.pth"), "--lin",
                           str(tmp_path / "lin.pth"), "--output", out]) == 2
  assert metric_nets.main(["lpips", "--vgg16", str(tmp_path / "lin.pth"), "--lin",
                           str(tmp_path / "lin.pth"), "--output", out + "2"]) == 2
  fn = lpips.load(out)

  rng = np.random.default_rng(1)
  x = rng.random((3, 48, 40, 3)).astype(np.float32)
  y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
  got = np.asarray(fn(x, y))

  # The lpips package's LPIPS(net="vgg", version="0.1").forward(2x-1, 2y-1), written out.
  shift = torch.tensor(lpips.SHIFT).view(1, 3, 1, 1)
  scale = torch.tensor(lpips.SCALE).view(1, 3, 1, 1)
  taps = {3: 0, 8: 1, 15: 2, 22: 3, 29: 4}

  def trunk(z):
    outs = []
    for i in range(30):
      z = feats[i](z)
      if i in taps:
        outs.append(z.clone())
    return outs

  with torch.no_grad():
    a = trunk(((2 * _nchw(x) - 1) - shift) / scale)
    b = trunk(((2 * _nchw(y) - 1) - shift) / scale)
    val = 0
    for k in range(5):
      fa = a[k] / (torch.sqrt(torch.sum(a[k] ** 2, dim=1, keepdim=True)) + 1e-10)
      fb = b[k] / (torch.sqrt(torch.sum(b[k] ** 2, dim=1, keepdim=True)) + 1e-10)
      val = val + torch.nn.functional.conv2d((fa - fb) ** 2, lins[k]).mean([2, 3])
  ref = val.reshape(-1).numpy()
  print(f"LPIPS vs reference: max abs error {np.abs(got - ref).max():.2e} (values {ref})")
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
  assert np.all(np.abs(np.asarray(fn(x, x))) < 1e-10)
  with pytest.raises(ValueError, match="holds 'lpips_vgg_v0.1' weights, expected"):
    params_file.load_params(out, "fid_inception")


def test_vgg_backbone_registry(tmp_path):
  from inpaint_jax.backbones import frozen

  torch.manual_seed(3)
  feats = _torch_features(19)
  path = str(tmp_path / "vgg19.pth")
  torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
  bb = frozen.build_backbones({"pl": {"kind": "vgg19", "path": path, "outputs": ("relu2_2",)}})
  net = frozen.bind({"pl": bb["pl"].module}, {"pl": bb["pl"].load()})["pl"]
  x = np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32)
  with torch.no_grad():
    ref = feats[:9](_nchw(x)).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(np.asarray(net(x)["relu2_2"]), ref, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="not found"):
    frozen.build_backbones({"pl": {"kind": "vgg16", "path": str(tmp_path / "x.pth")}})["pl"].load()
