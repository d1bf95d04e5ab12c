"""`python -m inpaint_jax.export --format onnx`: onnxruntime gives the inpaint command's output.

Every family's tiny config with random weights (and moved BatchNorm statistics) is exported
at a size that breaks its size rule (the padding and crop run in the graph) and run in
onnxruntime on single images, whose composites must equal the inpaint engine's within 1e-5,
and on a batch (the batch is symbolic), against the same batch in JAX. LaMa's converted
official-layout checkpoint must reproduce the PyTorch reference outputs stored in
`tests/data/lama_ffc_small.npz`.

The tests need jax2onnx >= 0.17.1, onnx and onnxruntime (`export.ONNX_INSTALL`) and skip
without them; the checks of the command's refusals run everywhere.
"""

from __future__ import annotations

import importlib.metadata
import pathlib

import helpers
import jax
import lama_fixtures as lf
import numpy as np
import pytest

from inpaint_jax import export as export_cli
from inpaint_jax import restore, system
from inpaint_jax.convert import __main__ as convert_cli
from inpaint_jax.errors import UserError
from inpaint_jax.inference import engine
from inpaint_jax.models import api
from inpaint_jax.weights import model_dir

GOLDEN = pathlib.Path(__file__).parent / "data" / "lama_ffc_small.npz"
ATOL = 1e-5          # onnxruntime vs the JAX inpaint path
GOLDEN_ATOL = 1e-4   # onnxruntime vs the PyTorch reference (the golden tests' tolerance)


def _onnx_available() -> bool:
  try:
    export_cli.check_onnx_tools()
    import onnxruntime  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except (UserError, ImportError):
    return False
  return True


# The JAX side (initialising, the inpaint engine) compiles like the training tests: XLA's
# optimisation passes cost more than they save on the tiny models.
pytestmark = pytest.mark.usefixtures("fast_compile")

needs_onnx = pytest.mark.skipif(not _onnx_available(),
                                reason=f"needs jax2onnx, onnx, onnxruntime: "
                                       f"{export_cli.ONNX_INSTALL}")


def _session(path: str):
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  options = ort.SessionOptions()
  options.log_severity_level = 3   # no warnings about initializers left unused in loop bodies
  return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _model_dir(tmp_path, family: str, **overrides) -> str:
  """configs/<family>.py:tiny (with `overrides`) with random weights and BN statistics."""
  config = helpers.config_module(family).get_config("tiny")
  for key, value in overrides.items():
    config.generator[key] = value
  g_model = system.build(config).nets["g"]
  image, mask = system.example_inputs(config)
  variables = jax.device_get(jax.jit(
      lambda r: g_model.init({"params": r, "dropout": r, "noise": r}, image, mask,
                             train=False))(jax.random.PRNGKey(1)))
  rng = np.random.default_rng(2)

  def move(path, leaf):
    name = getattr(path[-1], "key", "")
    if name == "mean":
      return (leaf + 0.1 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
    if name == "var":
      return (leaf * rng.uniform(0.5, 1.5, leaf.shape)).astype(leaf.dtype)
    return leaf

  variables = dict(variables)
  if "batch_stats" in variables:
    variables["batch_stats"] = jax.tree_util.tree_map_with_path(move, variables["batch_stats"])
  path = str(tmp_path / family)
  model_dir.save(path, config, {"g": variables}, family=family)
  return path


def _masks(h: int, w: int) -> np.ndarray:
  """Three (H, W, 1) masks: a box, a thin stroke plus a box, and a hole at the corner."""
  masks = np.zeros((3, h, w, 1), np.float32)
  masks[0, h // 4:h // 2, w // 5:w // 2] = 1
  masks[1, 2:h - 2, w // 2:w // 2 + 2] = 1
  masks[1, h - 9:h - 3, 3:10] = 1
  masks[2, h - 7:, w - 6:] = 1
  return masks


def _check_family(tmp_path, family: str, h: int, w: int, **overrides) -> None:
  md = _model_dir(tmp_path, family, **overrides)
  out = str(tmp_path / f"{family}.onnx")
  info = export_cli.export_onnx(md, out, height=h, width=w)
  assert info["inputs"] == {"image": ["N", h, w, 3], "mask": ["N", h, w, 1]}
  assert info["outputs"] == {"composite": ["N", h, w, 3]}
  sess = _session(out)
  assert [i.name for i in sess.get_inputs()] == ["image", "mask"]
  rng = np.random.default_rng(0)
  masks = _masks(h, w)
  images = rng.random((len(masks), h, w, 3), dtype=np.float32)
  config, g_model, variables = restore.load_generator(md)
  inpainter = engine.Inpainter(config, g_model, variables)   # the inpaint command's engine
  want = np.stack([inpainter(images[i], masks[i]) for i in range(len(masks))])
  errs = []
  for i in range(len(masks)):   # one image per run, as the inpaint command
    got = sess.run(None, {"image": images[i:i + 1], "mask": masks[i:i + 1]})[0]
    errs.append(float(np.max(np.abs(got[0] - want[i]))))
    np.testing.assert_allclose(got[0], want[i], atol=ATOL, err_msg=f"{family} mask {i}")
  # A batch of three through the symbolic N, against the same batch in JAX (not the single
  # images: DPNet's region normalisation pools over the batch, DCF's stage count follows the
  # batch's largest hole).
  got = sess.run(None, {"image": images, "mask": masks})[0]
  batch = engine.composite_fn(config, g_model)(variables, images, masks)
  np.testing.assert_allclose(got, np.asarray(batch), atol=ATOL, err_msg=f"{family} batch")
  print(f"\n[onnx] {family} {h}x{w}: export {info['seconds']} s, {info['bytes']} bytes, max abs "
        f"err vs inpaint {max(errs):.3g}, batch of 3 vs JAX "
        f"{float(np.max(np.abs(got - np.asarray(batch)))):.3g}")


@needs_onnx
@pytest.mark.slow
@pytest.mark.parametrize("family,h,w", [("lama", 37, 45), ("dfnet", 36, 44), ("rfr", 37, 45),
                                        ("dpnet", 37, 45)])
def test_onnx_equals_inpaint(tmp_path, family, h, w):
  _check_family(tmp_path, family, h, w)


@needs_onnx
@pytest.mark.slow
def test_onnx_equals_inpaint_dgfnet(tmp_path):
  _check_family(tmp_path, "dgfnet", 33, 40)


@needs_onnx
@pytest.mark.slow
def test_onnx_equals_inpaint_dcf_stages(tmp_path):
  """DCF with 3 refinement stages; holes whose boxes give 1, 2 and 3 active stages."""
  h, w = 33, 34
  md = _model_dir(tmp_path, "dcf", refinement_stages=3)
  out = str(tmp_path / "dcf.onnx")
  info = export_cli.export_onnx(md, out, height=h, width=w)
  print(f"\n[onnx] dcf: export {info['seconds']} s, {info['bytes']} bytes")
  sess = _session(out)
  config, g_model, variables = restore.load_generator(md)
  inpainter = engine.Inpainter(config, g_model, variables)
  rng = np.random.default_rng(0)
  image = rng.random((h, w, 3), dtype=np.float32)
  stages = []
  # One compiled program for the three stage counts (a traced count, as in the export).
  num_stages = jax.jit(lambda v, i, m: g_model.apply(v, i, m, train=False)["num_stages"])
  for side, want_stages in ((5, 1), (12, 2), (20, 3)):
    mask = np.zeros((h, w, 1), np.float32)
    mask[6:6 + side, 9:9 + side] = 1
    num = num_stages(variables, image[None], mask[None])
    stages.append(int(num))
    assert int(num) == want_stages
    got = sess.run(None, {"image": image[None], "mask": mask[None]})[0][0]
    want = inpainter(image, mask)
    print(f"\n[onnx] dcf {h}x{w}, {want_stages} stage(s): max abs err vs inpaint "
          f"{float(np.max(np.abs(got - want))):.3g}")
    np.testing.assert_allclose(got, want, atol=ATOL,
                               err_msg=f"dcf, {want_stages} stage(s)")
  assert stages == [1, 2, 3]


@needs_onnx
@pytest.mark.slow
def test_converted_official_lama_matches_pytorch(tmp_path):
  """Official-layout checkpoint -> convert -> ONNX: PyTorch's reference within 1e-4."""
  data = dict(np.load(GOLDEN))
  sd = {f"generator.{k}": v for k, v in data.items() if k.startswith("model.")}
  lf.save_lightning_checkpoint(str(tmp_path / "best.ckpt"), sd)
  md = str(tmp_path / "md")
  convert_cli.run(["lama", "--checkpoint", str(tmp_path / "best.ckpt"), "--output", md])
  for io in ("io", "io2"):
    image = np.transpose(data[f"{io}/image"], (0, 2, 3, 1)).astype(np.float32)
    mask = np.transpose(data[f"{io}/mask"], (0, 2, 3, 1)).astype(np.float32)
    ref = np.transpose(data[f"{io}/output_eval"], (0, 2, 3, 1))
    h, w = image.shape[1:3]
    out = str(tmp_path / f"{io}.onnx")
    export_cli.main(["--checkpoint", md, "--format", "onnx", "--output", out,
                     "--height", str(h), "--width", str(w)])
    got = _session(out).run(None, {"image": image, "mask": mask})[0]
    want = mask * ref + (1.0 - mask) * image    # the official composite
    err = float(np.max(np.abs(got - want)))
    print(f"\n[onnx] {io} ({h}x{w}) max abs err vs PyTorch {err:.3g}")
    assert err <= GOLDEN_ATOL


# --- the command's checks (no jax2onnx needed) --------------------------------------------
def test_onnx_tools_missing_or_too_old(monkeypatch):
  real = importlib.metadata.version

  def fake(version):
    def get(name):
      if name == "jax2onnx":
        if version is None:
          raise importlib.metadata.PackageNotFoundError(name)
        return version
      return real(name)
    return get

  monkeypatch.setattr(importlib.metadata, "version", fake(None))
  with pytest.raises(UserError, match="not installed; install: pip install"):
    export_cli.check_onnx_tools()
  monkeypatch.setattr(importlib.metadata, "version", fake("0.13.0"))
  with pytest.raises(UserError, match=r"found 0\.13\.0 .*ConvTranspose.*--no-deps"):
    export_cli.check_onnx_tools()
  assert export_cli._version_tuple("0.17.1") >= export_cli.JAX2ONNX_MIN
  assert export_cli._version_tuple("0.18.0rc1") >= export_cli.JAX2ONNX_MIN
  assert export_cli._version_tuple("0.17.0") < export_cli.JAX2ONNX_MIN


def test_onnx_command_refusals(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.13.0")
  base = ["--checkpoint", str(tmp_path), "--format", "onnx", "--output", str(tmp_path / "g.onnx")]
  for extra, needle in ((["--polymorphic"], "--polymorphic: --format onnx takes a fixed size"),
                        (["--height", "8", "--width", "8", "--platforms", "cpu"],
                         "--platforms applies to --format stablehlo only"),
                        (["--height", "8"], "--height and --width are required"),
                        (["--height", "8", "--width", "8"], "jax2onnx>=0.17.1, found 0.13.0")):
    with pytest.raises(SystemExit) as exc:
      export_cli.main(base + extra)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_onnx_generator_switches_only_the_fourier_units():
  config = helpers.tiny_config()
  g_model = system.build(config).nets["g"]
  assert g_model.fft_impl == "fft" and export_cli.onnx_generator(g_model).fft_impl == "matmul"
  dfnet = system.build(helpers.config_module("dfnet").get_config("tiny")).nets["g"]
  assert export_cli.onnx_generator(dfnet) is dfnet
  assert api.get_adapter(config).size_multiple == 8
