"""FID InceptionV3 against a PyTorch reference built in the test, and the FID pipeline."""

import jax
import numpy as np
import pytest

from inpaint_jax.backbones import inception
from inpaint_jax.convert import metric_nets
from inpaint_jax.metrics import fid
from inpaint_jax.weights import params_file

torch = pytest.importorskip("torch", reason="the reference is a PyTorch module")
nn = torch.nn
F = torch.nn.functional


# pytorch_fid.inception.fid_inception_v3() (torchvision blocks + FID patches), written out.
class BasicConv2d(nn.Module):
  def __init__(self, cin, cout, **kw):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg(x):
  return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class A(nn.Module):
  def __init__(self, cin, pool):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
    self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
    self.branch_pool = BasicConv2d(cin, pool, kernel_size=1)

  def forward(self, x):
    return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                      self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      self.branch_pool(_avg(x))], 1)


class B(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    return torch.cat([self.branch3x3(x),
                      self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      F.max_pool2d(x, 3, stride=2)], 1)


class C(nn.Module):
  def __init__(self, cin, c7):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    bd = x
    for k in range(1, 6):
      bd = getattr(self, f"branch7x7dbl_{k}")(bd)
    return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg(x))], 1)


class D(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    b7 = x
    for k in range(1, 5):
      b7 = getattr(self, f"branch7x7x3_{k}")(b7)
    return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class E(nn.Module):
  def __init__(self, cin, max_pool):
    super().__init__()
    self.max_pool = max_pool
    self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
    self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
    self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b3 = self.branch3x3_1(x)
    b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
    bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
    pool = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
    return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pool)], 1)


class FIDInception(nn.Module):
  def __init__(self):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
    self.Mixed_6a = B(288)
    self.Mixed_6b, self.Mixed_6c = C(768, 128), C(768, 160)
    self.Mixed_6d, self.Mixed_6e = C(768, 160), C(768, 192)
    self.Mixed_7a = D(768)
    self.Mixed_7b, self.Mixed_7c = E(1280, False), E(2048, True)
    self.fc = nn.Linear(2048, 1008)

  def forward(self, x, size):
    if size:
      x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
    x = F.max_pool2d(x, 3, stride=2)
    for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
      x = getattr(self, f"Mixed_{name}")(x)
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def _nchw(a):
  return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  torch.manual_seed(0)
  net = FIDInception().eval()
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):   # non-trivial running statistics
        m.running_mean.uniform_(-0.1, 0.1)
        m.running_var.uniform_(0.5, 1.5)
        m.weight.uniform_(0.8, 1.2)
        m.bias.uniform_(-0.1, 0.1)
  path = str(tmp_path_factory.mktemp("fid") / "pt_inception.pth")
  torch.save(net.state_dict(), path)
  out = path.replace(".pth", ".npz")
  assert metric_nets.main(["inception", "--weights", path, "--output", out]) == 0
  return net, out


def test_parameter_count():
  shapes = jax.eval_shape(lambda: inception.FIDInceptionV3(resize_to=None).init(
      jax.random.PRNGKey(0), np.zeros((1, 75, 75, 3), np.float32)))
  # torchvision inception_v3 without AuxLogits and without the classifier.
  assert sum(x.size for x in jax.tree.leaves(shapes["params"])) == 21_785_568


def test_features_match_reference(reference):
  net, out = reference
  rng = np.random.default_rng(0)
  x = rng.random((2, 64, 72, 3)).astype(np.float32)
  variables = params_file.load_params(out, fid.KIND)
  got = np.asarray(fid.features(variables, x, resize_to=83))
  with torch.no_grad():
    ref = net(_nchw(x), 83).numpy()
  err = np.abs(got - ref).max() / np.abs(ref).max()
  print(f"FID Inception pool3 vs reference: max abs error {np.abs(got - ref).max():.2e}, "
        f"relative to max {err:.2e}")
  assert got.shape == (2, 2048) and err < 1e-4


@pytest.mark.parametrize("shape", [(256, 256), (512, 384), (37, 45)])
def test_resize_matches_interpolate(shape):
  x = np.random.default_rng(1).random((1, *shape, 3)).astype(np.float32)
  got = np.asarray(inception.resize_bilinear(x, 299))
  ref = F.interpolate(_nchw(x), size=(299, 299), mode="bilinear",
                      align_corners=False).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(got, ref, atol=2e-6)


def test_load_and_errors(reference):
  _, out = reference
  fn = fid.load(out, resize_to=None)   # 75 px as is: the resize is tested above
  fa = np.asarray(fn(np.random.default_rng(2).random((2, 75, 75, 3), np.float32)))
  assert fa.shape == (2, 2048) and np.all(np.isfinite(fa))
  with pytest.raises(ValueError, match="key 'Conv2d_1a_3x3[.a-z_]*' is missing"):
    inception.variables_from_torch({})
  with pytest.raises(ValueError, match="does not exist"):
    fid.load(out + ".nope")
