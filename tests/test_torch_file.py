"""The torch-free reader/writer of PyTorch weight files.

The fixtures in tests/data were written by real torch (tests/data/make_torch_fixtures.py);
everything else here is built without torch.
"""

import collections
import io
import pathlib
import struct
import tarfile
import zipfile

import ml_dtypes
import numpy as np
import pytest

from inpaint_jax.weights import torch_file
from inpaint_jax.weights.torch_file import (
    Placeholder,
    TorchFileError,
    UnsupportedDtypeError,
    load_state_dict,
    load_torch_file,
    save_torch_state_dict,
)

DATA = pathlib.Path(__file__).parent / "data"
TINY = DATA / "tiny_torch.pt"
TINY_LEGACY = DATA / "tiny_torch_legacy.pt"
LIGHTNING = DATA / "tiny_lightning.ckpt"


@pytest.fixture(scope="module")
def expected():
  with np.load(DATA / "torch_fixtures_expected.npz") as f:
    return {k: f[k] for k in f.files}


def _expected_group(expected, group):
  prefix = f"{group}/"
  return {k[len(prefix):]: v for k, v in expected.items() if k.startswith(prefix)}


def _assert_same(got, want):
  assert list(got) == list(want)
  for name, value in want.items():
    assert got[name].dtype == value.dtype, name
    assert got[name].shape == value.shape, name
    np.testing.assert_array_equal(got[name], value, err_msg=name)


def _rewrite_zip(src, dst, edit=lambda name, data: (name, data), compression=zipfile.ZIP_STORED):
  """Copies a zip archive record by record through `edit(name, data) -> (name, data) | None`."""
  with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
    for info in zin.infolist():
      edited = edit(info.filename, zin.read(info))
      if edited is not None:
        zout.writestr(*edited)


# ------------------------------------------------------------------------------------------------
# Files written by torch


@pytest.mark.parametrize("path,group", [(TINY, "pt"), (TINY_LEGACY, "legacy")])
def test_torch_state_dict_matches_torch_values(path, group, expected):
  _assert_same(load_state_dict(path), _expected_group(expected, group))


def test_dtypes_and_layouts(expected):
  sd = load_state_dict(TINY)
  dtypes = {k: v.dtype.name for k, v in sd.items()}
  assert dtypes["f32"] == "float32"
  assert dtypes["f16"] == "float16"
  assert dtypes["bf16"] == "float32"  # widened exactly; numpy has no bfloat16
  assert dtypes["f64"] == "float64"
  assert dtypes["i64"] == "int64"
  assert dtypes["i32"] == "int32"
  assert dtypes["u8"] == "uint8"
  assert dtypes["bool"] == "bool"
  assert dtypes["u16"] == "uint16"  # saved through _rebuild_tensor_v3 + an untyped storage
  # Same values as rounding to bfloat16 with ml_dtypes (what JAX uses), sign of -0.0 included.
  want_bf16 = np.array([1.0, -3.140625, 1e-30, 3e38, -0.0], ml_dtypes.bfloat16).astype(np.float32)
  np.testing.assert_array_equal(sd["bf16"], want_bf16)
  assert np.signbit(sd["bf16"][4])
  assert sd["i64"][2] == 2**62 + 7
  assert sd["scalar"].shape == () and sd["scalar"] == 2.5
  assert sd["empty"].shape == (0, 3)
  # The views share `base`'s storage in the file; the strides and offset must be honoured.
  np.testing.assert_array_equal(sd["view_t"], sd["base"].T)
  np.testing.assert_array_equal(sd["view_slice"], sd["base"][1:3, ::2])
  np.testing.assert_array_equal(sd["param"], np.full((2, 2), 0.5, np.float32))
  for value in sd.values():
    assert value.dtype.isnative


def test_load_torch_file_returns_the_whole_object(expected):
  obj = load_torch_file(TINY)
  assert isinstance(obj, collections.OrderedDict)
  _assert_same(obj, _expected_group(expected, "pt"))


def test_lightning_checkpoint_is_unwrapped(expected):
  want = _expected_group(expected, "ckpt")
  _assert_same(load_state_dict(LIGHTNING), want)
  _assert_same(load_state_dict(LIGHTNING, key="state_dict"), want)


def test_prefix_filtering_and_stripping(expected):
  want = _expected_group(expected, "ckpt")
  gen = load_state_dict(LIGHTNING, strip_prefix="generator.")
  assert list(gen) == [
      "model.1.ffc.convl2l.weight", "model.1.bn_l.running_mean",
      "model.1.bn_l.num_batches_tracked"
  ]
  np.testing.assert_array_equal(gen["model.1.ffc.convl2l.weight"],
                                want["generator.model.1.ffc.convl2l.weight"])
  assert gen["model.1.bn_l.num_batches_tracked"].dtype == np.int64
  disc = load_state_dict(LIGHTNING, strip_prefix="discriminator.")
  assert list(disc) == ["model0.0.weight", "model0.0.bias"]


def test_lightning_extras_are_data_or_placeholders(expected):
  ckpt = load_torch_file(LIGHTNING)
  assert ckpt["epoch"] == 3 and ckpt["global_step"] == 10
  assert ckpt["pytorch-lightning_version"] == "1.2.9"
  assert ckpt["callbacks"]["ModelCheckpoint"]["best_model_score"] == np.float32(0.25)
  opt = ckpt["optimizer_states"][0]
  np.testing.assert_array_equal(opt["state"][0]["exp_avg"], expected["ckpt_opt/exp_avg"])
  assert opt["param_groups"][0]["betas"] == (0.9, 0.999)
  # Lightning's AttributeDict and OmegaConf's DictConfig are not imported, only recorded.
  hparams = ckpt["hyper_parameters"]
  assert isinstance(hparams, Placeholder)
  assert (type(hparams).module, type(hparams).qualname) == (
      "pytorch_lightning.utilities.parsing", "AttributeDict")
  assert hparams.dict_items["lr"] == 1e-3
  config = hparams.dict_items["config"]
  assert type(config).qualname == "DictConfig"
  assert config.state == {"_content": {"generator": {"kind": "ffc_resnet", "ngf": 64}}}


# ------------------------------------------------------------------------------------------------
# Errors


def test_missing_file(tmp_path):
  missing = tmp_path / "nope.ckpt"
  with pytest.raises(FileNotFoundError, match="nope.ckpt"):
    load_state_dict(missing)
  with pytest.raises(FileNotFoundError, match="nope.ckpt"):
    load_torch_file(missing)


@pytest.mark.parametrize("content", [b"just some text\n", b"", b"\x80\x02}q\x00."])
def test_not_a_torch_file(tmp_path, content):
  path = tmp_path / "weights.pth"
  path.write_bytes(content)
  with pytest.raises(TorchFileError, match=r"weights\.pth.*not a PyTorch weight file.*torch\.save"):
    load_state_dict(path)


def test_zip_that_is_not_a_torch_file():
  # An .npz is a zip archive too, but without data.pkl.
  with pytest.raises(TorchFileError, match=r"torch_fixtures_expected\.npz.*data\.pkl.*torch\.save"):
    load_torch_file(DATA / "torch_fixtures_expected.npz")


def test_directory_and_tar_are_refused(tmp_path):
  with pytest.raises(TorchFileError, match="directory"):
    load_state_dict(tmp_path)
  path = tmp_path / "old.pt"
  with tarfile.open(path, "w") as tar:
    info = tarfile.TarInfo("storages")
    info.size = 3
    tar.addfile(info, io.BytesIO(b"abc"))
  with pytest.raises(TorchFileError, match="tar"):
    load_state_dict(path)


def test_safetensors_gets_a_hint(tmp_path):
  path = tmp_path / "model.bin"
  header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
  path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
  with pytest.raises(TorchFileError, match="safetensors"):
    load_state_dict(path)


def test_state_dict_selection_errors():
  with pytest.raises(TorchFileError, match=r"'model'.*has \["):
    load_state_dict(LIGHTNING, key="model")
  with pytest.raises(TorchFileError, match="is a list, not a state dict"):
    load_state_dict(LIGHTNING, key="optimizer_states")
  with pytest.raises(TorchFileError, match="not a flat state dict"):
    load_state_dict(LIGHTNING, key="callbacks")
  with pytest.raises(TorchFileError, match=r"'gen\.'.*\['discriminator\.', 'generator\.'\]"):
    load_state_dict(LIGHTNING, strip_prefix="gen.")


def test_unsupported_dtype_is_named_and_only_fails_when_read(tmp_path):
  path = tmp_path / "q.pt"
  save_torch_state_dict(path, {"ok": np.ones(2, np.float32), "bad": np.ones(2, np.int8)})
  # Pretend `bad` is a quantized tensor: same bytes, storage class torch.QInt8Storage.
  patched = tmp_path / "q_patched.pt"
  _rewrite_zip(path, patched, lambda n, d: (n, d.replace(b"torch\nCharStorage\n",
                                                         b"torch\nQInt8Storage\n")))
  with pytest.raises(UnsupportedDtypeError, match=r"q_patched\.pt.*torch\.qint8.*bad"):
    load_state_dict(patched)
  with pytest.raises(UnsupportedDtypeError, match="qint8"):
    load_torch_file(patched)
  # Tensors that are not selected are never read.
  assert list(load_state_dict(patched, strip_prefix="ok")) == [""]


def test_corrupt_strides_are_rejected(tmp_path):
  path = tmp_path / "s.pt"
  save_torch_state_dict(path, {"w": np.ones((2, 3), np.float32)})
  patched = tmp_path / "s_patched.pt"
  # Stride tuple (3, 1) -> (9, 1): the last row would read past the storage.
  _rewrite_zip(path, patched,
               lambda n, d: (n, d.replace(b"(K\x03K\x01t", b"(K\x09K\x01t")))
  with pytest.raises(TorchFileError, match="outside its storage"):
    load_state_dict(patched)


def test_truncated_legacy_file(tmp_path):
  path = tmp_path / "cut.pt"
  path.write_bytes(TINY_LEGACY.read_bytes()[:-10])
  with pytest.raises(TorchFileError, match="truncated"):
    load_state_dict(path)


def test_pickled_code_is_never_run(tmp_path):
  marker = tmp_path / "pwned"
  # data.pkl = os.system("touch <marker>"), hand-written protocol-2 opcodes.
  command = f"touch {marker}".encode()
  payload = (b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(command)) + command +
             b"\x85R.")
  path = tmp_path / "evil.pt"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("evil/data.pkl", payload)
    z.writestr("evil/version", b"3\n")
  obj = load_torch_file(path)
  assert isinstance(obj, Placeholder)
  assert (type(obj).module, type(obj).qualname, obj.args) == ("os", "system", (command.decode(),))
  assert not marker.exists()


def test_bytes_from_an_int_is_refused(tmp_path):
  # bytes(10**12) would allocate a terabyte from a few pickle bytes.
  payload = b"\x80\x02c__builtin__\nbytes\n\x8a\x05\x00\x10\xa5\xd4\xe8\x85R."
  path = tmp_path / "dos.pt"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("a/data.pkl", payload)
  with pytest.raises(TorchFileError, match="bytes"):
    load_torch_file(path)


# ------------------------------------------------------------------------------------------------
# Archive variations


def test_top_folder_name_and_compression_do_not_matter(tmp_path, expected):
  want = _expected_group(expected, "pt")
  renamed = tmp_path / "renamed.pt"
  _rewrite_zip(TINY, renamed, lambda n, d: ("best/" + n.split("/", 1)[1], d))
  _assert_same(load_state_dict(renamed), want)
  deflated = tmp_path / "deflated.pt"
  _rewrite_zip(TINY, deflated, compression=zipfile.ZIP_DEFLATED)
  _assert_same(load_state_dict(deflated), want)
  # torch < 1.13 wrote no byteorder record; little endian is implied.
  no_byteorder = tmp_path / "no_byteorder.pt"
  _rewrite_zip(TINY, no_byteorder, lambda n, d: None if n.endswith("/byteorder") else (n, d))
  _assert_same(load_state_dict(no_byteorder), want)


def test_big_endian_archive(tmp_path):
  arrays = {
      "f": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5,
      "bf": np.array([1.5, -2.0, 3e38], ml_dtypes.bfloat16),
      "i": np.array([1, -(2**40)], np.int64),
      "b": np.array([True, False]),
  }
  path = tmp_path / "le.pt"
  save_torch_state_dict(path, arrays)
  items = list(arrays.values())

  def to_big_endian(name, data):
    if name.endswith("/byteorder"):
      return name, b"big"
    if "/data/" in name:
      array = items[int(name.rsplit("/", 1)[1])]
      return name, array.view(f"u{array.dtype.itemsize}").byteswap().tobytes()
    return name, data

  big = tmp_path / "be.pt"
  _rewrite_zip(path, big, to_big_endian)
  got = load_state_dict(big)
  for name, array in arrays.items():
    np.testing.assert_array_equal(got[name], array.astype(np.float32) if name == "bf" else array)
    assert got[name].dtype.isnative


# ------------------------------------------------------------------------------------------------
# Writing


def test_save_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {
      "f32": rng.normal(size=(3, 4)).astype(np.float32),
      "f16": rng.normal(size=(5,)).astype(np.float16),
      "f64": rng.normal(size=(2, 2)),
      "bf16": rng.normal(size=(4,)).astype(ml_dtypes.bfloat16),
      "i64": np.array([-(2**62), 3], np.int64),
      "i32": np.array([-7, 2**31 - 1], np.int32),
      "i16": np.array([-7], np.int16),
      "i8": np.array([-7], np.int8),
      "u8": np.array([0, 255], np.uint8),
      "bool": np.array([True, False, True]),
      "c64": np.array([1 + 2j], np.complex64),
      "scalar": np.float32(2.5),
      "empty": np.zeros((0, 3), np.float32),
      "non_contiguous": np.arange(12.0).reshape(3, 4)[:, ::2].T,
      "big_endian": np.array([1.0, -2.0], ">f4"),
      "list": [[1, 2], [3, 4]],
  }
  path = tmp_path / "ours.pth"
  save_torch_state_dict(path, arrays)
  got = load_state_dict(path)
  assert list(got) == list(arrays)
  for name, value in arrays.items():
    value = np.asarray(value)
    if value.dtype == ml_dtypes.bfloat16:
      value = value.astype(np.float32)
    assert got[name].shape == value.shape, name
    assert got[name].dtype == value.dtype.newbyteorder("="), name
    np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_saved_records_are_aligned_like_torch(tmp_path):
  path = tmp_path / "aligned.pt"
  save_torch_state_dict(path, {f"w{i}": np.ones(i + 1, np.float16) for i in range(5)})
  with open(path, "rb") as f, zipfile.ZipFile(f) as z:
    names = z.namelist()
    assert names[0] == "archive/data.pkl" and "archive/version" in names
    for info in z.infolist():
      assert info.compress_type == zipfile.ZIP_STORED
      f.seek(info.header_offset)
      name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
      if "/data/" in info.filename:
        assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename


def test_save_errors(tmp_path):
  with pytest.raises(UnsupportedDtypeError, match="'u'.*uint16"):
    save_torch_state_dict(tmp_path / "x.pt", {"u": np.zeros(2, np.uint16)})
  with pytest.raises(UnsupportedDtypeError, match="object"):
    save_torch_state_dict(tmp_path / "x.pt", {"o": np.array([None])})
  with pytest.raises(TypeError, match="strings"):
    save_torch_state_dict(tmp_path / "x.pt", {1: np.zeros(2)})


def test_placeholder_classes_are_shared_per_global():
  a = torch_file._placeholder_class("omegaconf.dictconfig", "DictConfig")
  b = torch_file._placeholder_class("omegaconf.dictconfig", "DictConfig")
  assert a is b and issubclass(a, Placeholder)
  obj = a(1, x=2)
  assert obj.args == (1,) and obj.kwargs == {"x": 2}
  assert "omegaconf.dictconfig.DictConfig" in repr(obj)
