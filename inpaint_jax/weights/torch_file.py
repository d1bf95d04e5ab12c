"""Reads (and writes) PyTorch weight files with only the standard library and numpy.

The published LaMa checkpoints (`big-lama/models/best.ckpt`) and most other
PyTorch weights are files written by `torch.save`. This module reads them
without importing torch, so converting weights never makes torch a dependency.

Two on-disk formats exist:

* The zip format (torch >= 1.6, the default since then): a stored (uncompressed)
  zip archive with one top folder whose name varies (`archive/`, the file stem,
  ...). `<top>/data.pkl` is a pickle of the saved object in which every tensor
  storage is a *persistent id* `('storage', StorageType, key, location, numel)`;
  the bytes of storage `key` are the record `<top>/data/<key>`, in the byte order
  named by `<top>/byteorder` (little endian when absent).
* The legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`):
  consecutive pickles of a magic number, a protocol version, a system-info dict,
  the object itself, and the list of storage keys, followed by each storage as a
  little-endian int64 element count and its raw little-endian bytes.

The even older tar format (torch <= 0.3) is detected and refused with an error.

Pickles can run arbitrary code, so the object pickle is read with a restricted
unpickler: it resolves only the tensor rebuild functions, storage types, a few
pure-data containers and numpy's array/scalar constructors. Every other global
(Lightning's `AttributeDict`, OmegaConf configs, `nn.Module` classes, `os.system`,
...) becomes a `Placeholder` subclass that records its arguments and state but
never imports or executes anything.

Tensors come back as numpy arrays with their torch shape. bfloat16 becomes
float32 (exactly; numpy has no bfloat16). Storage bytes are read lazily, so
`load_state_dict` reads only the tensors it returns (not, e.g., the optimizer
state of a Lightning checkpoint). Contiguous tensors are views of their storage
buffer, so tensors that shared a storage in torch share memory here too.

`save_torch_state_dict` writes the zip format from numpy arrays, so weights can
go back to PyTorch (`torch.load(path, weights_only=True)` accepts the files).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import pickle
import struct
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Placeholder",
    "TorchDtype",
    "TorchFileError",
    "UnsupportedDtypeError",
    "load_state_dict",
    "load_torch_file",
    "save_torch_state_dict",
]

# What the error messages tell users this module accepts.
_ACCEPTED = (
    "accepted: files written by torch.save (the zip format of torch >= 1.6 or the legacy "
    "pickle format of torch < 1.6), usually named .pt, .pth, .ckpt or .bin")

# `torch.serialization.MAGIC_NUMBER` / `PROTOCOL_VERSION` of the legacy format.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001

# Zip local file header: signature + fixed fields, then the name and the extra field.
_ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")
_ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"

# torch aligns storage records to 64 bytes so that `torch.load(mmap=True)` can map them.
_STORAGE_ALIGNMENT = 64


class TorchFileError(ValueError):
  """The file is not a readable PyTorch weight file (or holds something unsupported)."""


class UnsupportedDtypeError(TorchFileError):
  """A tensor's dtype has no numpy equivalent this reader handles."""


# --------------------------------------------------------------------------------------------------
# dtypes

# torch dtype name -> numpy dtype of the bytes on disk (little endian). bfloat16 is read as uint16
# and widened to float32 afterwards; that is the only conversion this module makes.
_TORCH_TO_NUMPY: dict[str, str] = {
    "float32": "<f4",
    "float64": "<f8",
    "float16": "<f2",
    "bfloat16": "<u2",
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
    "complex64": "<c8",
    "complex128": "<c16",
}

# dtypes torch can save that we refuse (with their element size, which the legacy format needs to
# skip over their bytes). Listed so that their pickled names resolve to `TorchDtype` and the error
# names the dtype instead of failing somewhere obscure.
_TORCH_UNSUPPORTED_DTYPES: dict[str, int] = {
    "complex32": 4,
    "bcomplex32": 4,
    "float8_e5m2": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2fnuz": 1,
    "float8_e4m3fnuz": 1,
    "float8_e8m0fnu": 1,
    "float4_e2m1fn_x2": 1,
    "bits8": 1,
    "bits16": 2,
    "bits1x8": 1,
    "bits2x4": 1,
    "bits4x2": 1,
    "qint8": 1,
    "quint8": 1,
    "qint32": 4,
    "quint4x2": 1,
    "quint2x4": 1,
    **{f"uint{i}": 1 for i in range(1, 8)},
    **{f"int{i}": 1 for i in range(1, 8)},
}

# Legacy typed storage class name -> torch dtype name.
_STORAGE_TO_TORCH: dict[str, str] = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    # Untyped storages are bytes; the tensor's dtype comes from `_rebuild_tensor_v3`.
    "UntypedStorage": "uint8",
    "TypedStorage": "uint8",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
    "ComplexHalfStorage": "complex32",
}


def _element_size(torch_dtype: str) -> int | None:
  if torch_dtype in _TORCH_TO_NUMPY:
    return np.dtype(_TORCH_TO_NUMPY[torch_dtype]).itemsize
  return _TORCH_UNSUPPORTED_DTYPES.get(torch_dtype)


def _unsupported_dtype(torch_dtype: str, what: str = "") -> UnsupportedDtypeError:
  where = f" ({what})" if what else ""
  return UnsupportedDtypeError(
      f"unsupported tensor dtype torch.{torch_dtype}{where}; supported: "
      f"{', '.join(sorted(_TORCH_TO_NUMPY))}. Convert the tensor in PyTorch first "
      "(e.g. `.float()`).")


@dataclasses.dataclass(frozen=True)
class TorchDtype:
  """A pickled `torch.<dtype>` object, e.g. `TorchDtype("float32")`."""

  name: str

  def __repr__(self) -> str:
    return f"torch.{self.name}"


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """A pickled storage class such as `torch.FloatStorage` or `torch.storage.UntypedStorage`."""

  name: str

  @property
  def dtype(self) -> str:
    return _STORAGE_TO_TORCH.get(self.name, self.name)


# --------------------------------------------------------------------------------------------------
# Placeholders for globals that are never imported


class Placeholder:
  """Stands in for an object whose class or function the reader refuses to import.

  `find_class` turns every global it does not know into a subclass of this with
  `module` and `qualname` set. Unpickling then "calls" that subclass instead of the
  real thing, so nothing runs; the instance keeps what the pickle would have passed:

  Attributes:
    args: positional arguments of the call (REDUCE / NEWOBJ).
    kwargs: keyword arguments (NEWOBJ_EX).
    state: what the pickle passed to `__setstate__` (BUILD), usually the `__dict__`.
    dict_items: items set on it (pickled dict subclasses, e.g. Lightning's `AttributeDict`).
    list_items: items appended to it (pickled list subclasses).
  """

  module: ClassVar[str] = ""
  qualname: ClassVar[str] = ""

  def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
    obj = super().__new__(cls)
    obj.args = args
    obj.kwargs = kwargs
    obj.state = None
    obj.dict_items = {}
    obj.list_items = []
    return obj

  def __init__(self, *args: Any, **kwargs: Any):
    del args, kwargs  # Recorded by __new__.

  def __setstate__(self, state: Any) -> None:
    self.state = state

  def __setitem__(self, key: Any, value: Any) -> None:
    self.dict_items[key] = value

  def append(self, value: Any) -> None:
    self.list_items.append(value)

  def extend(self, values: Any) -> None:
    self.list_items.extend(values)

  def __repr__(self) -> str:
    parts = [f"{self.module}.{self.qualname}"]
    for name in ("args", "kwargs", "state", "dict_items", "list_items"):
      value = getattr(self, name)
      if value:
        parts.append(f"{name}={value!r}")
    text = " ".join(parts)
    return f"<Placeholder {text[:300]}{'...' if len(text) > 300 else ''}>"


_PLACEHOLDER_CLASSES: dict[tuple[str, str], type[Placeholder]] = {}


def _placeholder_class(module: str, name: str) -> type[Placeholder]:
  # One class per global, so `isinstance` and `type(x).qualname` work across a file.
  key = (module, name)
  if key not in _PLACEHOLDER_CLASSES:
    _PLACEHOLDER_CLASSES[key] = type(
        name.rsplit(".", 1)[-1] or "Placeholder", (Placeholder,), {
            "module": module,
            "qualname": name,
            "__module__": __name__,
        })
  return _PLACEHOLDER_CLASSES[key]


# --------------------------------------------------------------------------------------------------
# Lazy storages and tensors


class _Blob:
  """The bytes of one storage record in the open file, read on first use."""

  def __init__(self, read: Callable[[], np.ndarray], nbytes: int, name: str):
    self._read = read
    self.nbytes = nbytes
    self.name = name
    self._data: np.ndarray | None = None

  def data(self) -> np.ndarray:
    if self._data is None:
      self._data = self._read()
    return self._data


@dataclasses.dataclass
class _Storage:
  """A pickled storage: a typed window of bytes of a `_Blob`."""

  dtype: str  # torch dtype name of the storage ("uint8" for untyped storages)
  blob: _Blob | None  # None until the legacy format's trailer has been read
  key: str
  big_endian: bool
  byte_offset: int = 0
  nbytes: int | None = None  # None: to the end of the blob
  root: _Storage | None = None  # The storage a legacy storage view is a window of.

  def bytes(self) -> np.ndarray:
    if self.blob is None:
      raise TorchFileError(f"storage {self.key!r} has no data in the file")
    data = self.blob.data()
    end = len(data) if self.nbytes is None else self.byte_offset + self.nbytes
    if end > len(data):
      raise TorchFileError(
          f"storage {self.key!r} needs {end} bytes but its record {self.blob.name} has "
          f"{len(data)}; the file is truncated or corrupt")
    return data[self.byte_offset:end]

  def materialize(self, what: str = "") -> np.ndarray:
    # A storage saved on its own (not through a tensor) reads as a 1-D array.
    size = _element_size(self.dtype) or 1
    numel = (len(self.bytes()) if self.blob is not None else 0) // size
    return _LazyTensor(self, 0, (numel,), (1,), self.dtype).materialize(what)


@dataclasses.dataclass
class _LazyTensor:
  """A tensor whose data are read from its storage when materialized."""

  storage: _Storage
  offset: int
  shape: tuple[int, ...]
  stride: tuple[int, ...]
  dtype: str  # torch dtype name

  def materialize(self, what: str = "") -> np.ndarray:
    if self.dtype not in _TORCH_TO_NUMPY:
      raise _unsupported_dtype(self.dtype, what)
    file_dtype = np.dtype(_TORCH_TO_NUMPY[self.dtype])
    big_endian = self.storage.big_endian
    if big_endian:
      file_dtype = file_dtype.newbyteorder(">")
    raw = self.storage.bytes()
    size = file_dtype.itemsize
    flat = raw[:len(raw) // size * size].view(file_dtype)
    count = math.prod(self.shape)
    if count == 0:
      out = np.zeros(self.shape, file_dtype)
    else:
      last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride, strict=True))
      if self.offset < 0 or min(self.stride, default=0) < 0 or last >= len(flat):
        raise TorchFileError(
            f"tensor{' ' + what if what else ''} (offset {self.offset}, shape {self.shape}, "
            f"stride {self.stride}) reaches outside its storage of {len(flat)} elements; "
            "the file is corrupt")
      if _is_contiguous(self.shape, self.stride):
        # A view: no copy, and tensors sharing a storage share memory as they do in torch.
        out = flat[self.offset:self.offset + count].reshape(self.shape)
      else:
        out = np.lib.stride_tricks.as_strided(
            flat[self.offset:], self.shape, tuple(s * size for s in self.stride), writeable=False)
        out = np.array(out, copy=True)
    if self.dtype == "bfloat16":
      # bfloat16 is the top half of a float32, so the widening is exact.
      return (out.astype(np.uint32) << 16).view(np.float32)
    if big_endian and size > 1:
      return out.astype(file_dtype.newbyteorder("="))
    return out


def _is_contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
  expected = 1
  for dim, step in zip(reversed(shape), reversed(stride), strict=True):
    if dim != 1 and step != expected:
      return False
    expected *= dim
  return True


@dataclasses.dataclass
class _UnsupportedTensor:
  """A tensor kind (quantized, sparse, nested, ...) that cannot become a numpy array."""

  kind: str

  def materialize(self, what: str = "") -> np.ndarray:
    where = f" ({what})" if what else ""
    raise TorchFileError(
        f"unsupported tensor kind {self.kind}{where}: only dense CPU/CUDA tensors are "
        "read. Convert it to a dense tensor in PyTorch first.")


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
  if not isinstance(value, tuple | list) or not all(isinstance(v, int) for v in value):
    raise TorchFileError(f"tensor {what} must be a tuple of ints, got {value!r}")
  return tuple(value)


def _make_tensor(storage: Any, offset: Any, size: Any, stride: Any,
                 dtype: str | None = None) -> _LazyTensor:
  if not isinstance(storage, _Storage):
    raise TorchFileError(f"tensor storage is {type(storage).__name__}, not a saved storage")
  if not isinstance(offset, int):
    raise TorchFileError(f"tensor storage offset must be an int, got {offset!r}")
  shape = _int_tuple(size, "size")
  stride = _int_tuple(stride, "stride")
  if len(shape) != len(stride) or min(shape, default=0) < 0:
    raise TorchFileError(f"invalid tensor size {shape} / stride {stride}")
  return _LazyTensor(storage, offset, shape, stride, dtype or storage.dtype)


# --------------------------------------------------------------------------------------------------
# The restricted unpickler

# Python 2 pickles (old legacy files) name these modules differently.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

def _byte_source(data: Any = b"", *encoding: Any) -> Any:
  # `bytes(n)` would allocate n bytes from a few pickle bytes; pickles only need the data forms.
  if isinstance(data, int):
    raise TorchFileError("refusing bytes(<int>) in a pickle")
  return data.encode(*encoding) if isinstance(data, str) else data


# Pure-data globals that are returned as (safe wrappers of) themselves. None of them can reach the
# file system, import anything or call an arbitrary callable (`defaultdict` only stores its
# factory, which is itself one of these or a placeholder).
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("collections", "Counter"): collections.Counter,
    ("collections", "deque"): collections.deque,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): lambda *args: bytearray(_byte_source(*args)),
    ("builtins", "bytes"): lambda *args: bytes(_byte_source(*args)),
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    # Protocol-2 pickles spell bytes as `_codecs.encode(text, "latin1")`.
    ("_codecs", "encode"): lambda text, encoding="utf-8": str(text).encode(str(encoding)),
    ("torch", "Size"): tuple,
    # numpy scalars and arrays appear in Lightning callback/loop state.
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
  # numpy's `_reconstruct` makes an instance of `subtype`; only plain ndarrays are data.
  if subtype is not np.ndarray:
    return _placeholder_class("numpy.core.multiarray", "_reconstruct")(subtype, shape, dtype)
  return np.ndarray.__new__(np.ndarray, shape, dtype)


# numpy 2 moved `numpy.core` to `numpy._core`; pickles name either.
for _np_module in ("numpy.core.multiarray", "numpy._core.multiarray"):
  _SAFE_GLOBALS[(_np_module, "_reconstruct")] = _np_reconstruct
  _SAFE_GLOBALS[(_np_module, "scalar")] = np._core.multiarray.scalar


class _TorchUnpickler(pickle.Unpickler):
  """Unpickles `torch.save` object pickles into lazy tensors and placeholders."""

  def __init__(self, file: io.BufferedIOBase, *, big_endian: bool, legacy: bool,
               zip_blob: Callable[[str], _Blob] | None = None):
    # torch.load's default encoding for Python 2 strings.
    super().__init__(file, encoding="utf-8")
    self._big_endian = big_endian
    self._legacy = legacy
    self._zip_blob = zip_blob
    # Storages by key, so tensors that share a storage share one read.
    self.storages: dict[str, _Storage] = {}
    self._views: dict[str, _Storage] = {}
    self._rebuild = self._rebuild_functions()

  def find_class(self, module: str, name: str) -> Any:
    module = _PY2_MODULES.get(module, module)
    # torch renamed `torch.tensor` to `torch._tensor` (see torch.serialization).
    if module == "torch.tensor":
      module = "torch._tensor"
    rebuild = self._rebuild.get((module, name))
    if rebuild is not None:
      return rebuild
    if module in ("torch", "torch.cuda", "torch.storage") and name.endswith("Storage"):
      return _StorageType(name)
    if module == "torch" and (name in _TORCH_TO_NUMPY or name in _TORCH_UNSUPPORTED_DTYPES):
      return TorchDtype(name)
    if (module, name) in _SAFE_GLOBALS:
      return _SAFE_GLOBALS[(module, name)]
    if module.startswith("torch") and name.startswith("_rebuild"):
      # A tensor kind we cannot read: fail when (and only if) that tensor is wanted.
      kind = f"{module}.{name}"
      return lambda *args, **kwargs: _UnsupportedTensor(kind)
    return _placeholder_class(module, name)

  def _rebuild_functions(self) -> dict[tuple[str, str], Callable[..., Any]]:

    def rebuild_tensor(storage, offset, size, stride):
      return _make_tensor(storage, offset, size, stride)

    def rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                          metadata=None):
      del requires_grad, hooks, metadata  # Autograd bookkeeping only.
      return _make_tensor(storage, offset, size, stride)

    def rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                          metadata=None):
      # Newer dtypes (uint16, float8, ...) are saved with an untyped storage plus the dtype.
      del requires_grad, hooks, metadata
      name = dtype.name if isinstance(dtype, TorchDtype) else str(dtype)
      return _make_tensor(storage, offset, size, stride, name)

    def rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
      del requires_grad, hooks, state  # An nn.Parameter's data is all we keep.
      return data

    def rebuild_from_type_v2(func, new_type, args, state=None):
      # Tensor subclasses: rebuild the plain tensor; the subclass is a placeholder anyway.
      del new_type, state
      return func(*args)

    def rebuild_from_type(func, new_type, args, state=None):
      del new_type, state
      return func(*args)

    return {
        ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): rebuild_from_type_v2,
        ("torch._tensor", "_rebuild_from_type"): rebuild_from_type,
    }

  def persistent_load(self, pid: Any) -> Any:
    if not isinstance(pid, tuple) or not pid:
      raise TorchFileError(f"unexpected persistent id {pid!r}")
    typename = _ascii(pid[0])
    if typename == "module" and self._legacy:
      # A pickled nn.Module class with its source; the class is already a placeholder.
      return pid[1]
    if typename != "storage":
      raise TorchFileError(f"unexpected persistent id type {typename!r}")
    if self._legacy:
      if len(pid) != 6:
        raise TorchFileError(f"malformed legacy storage id {pid!r}")
      _, storage_type, key, _, _, view = pid
    else:
      if len(pid) != 5:
        raise TorchFileError(f"malformed storage id {pid!r}")
      _, storage_type, key, _, _ = pid
      view = None
    if not isinstance(storage_type, _StorageType):
      raise TorchFileError(f"storage type {storage_type!r} is not a torch storage class")
    key = _ascii(key)
    dtype = storage_type.dtype
    if key not in self.storages:
      if self._legacy:
        blob = None  # Filled in once the storage table after the pickle has been read.
      else:
        blob = self._zip_blob(key)
      self.storages[key] = _Storage(dtype, blob, key, self._big_endian)
    storage = self.storages[key]
    if view is None:
      return storage
    # Legacy storage views (torch < 0.4): a window of `view_size` elements at `offset`.
    view_key, offset, view_size = view
    view_key = _ascii(view_key)
    if view_key not in self._views:
      size = _element_size(dtype) or 1
      self._views[view_key] = _Storage(
          dtype, None, view_key, self._big_endian, offset * size, view_size * size, root=storage)
    return self._views[view_key]

  def finish_legacy_views(self) -> None:
    """Points legacy storage views at their root's data once the storage table is read."""
    for view in self._views.values():
      view.blob = view.root.blob
      view.byte_offset += view.root.byte_offset


def _ascii(value: Any) -> str:
  # Python 2 pickles store internal keys as bytes.
  return value.decode("ascii") if isinstance(value, bytes) else str(value)


class _PlainUnpickler(pickle.Unpickler):
  """For the legacy format's header pickles, which hold plain data only."""

  def find_class(self, module: str, name: str) -> Any:
    raise TorchFileError(f"unexpected global {module}.{name} in a legacy header pickle")

  def persistent_load(self, pid: Any) -> Any:
    raise TorchFileError("unexpected persistent id in a legacy header pickle")


# --------------------------------------------------------------------------------------------------
# Opening files


def _read_into(file: io.BufferedIOBase, offset: int, nbytes: int, name: str) -> np.ndarray:
  buf = np.empty(nbytes, np.uint8)
  file.seek(offset)
  if nbytes and file.readinto(memoryview(buf)) != nbytes:
    raise TorchFileError(f"{name}: the file is truncated")
  return buf


def _zip_top_folder(names: list[str]) -> str:
  # torch's reader takes the folder of the first record; `data.pkl` must be inside it.
  first = names[0].split("/", 1)[0] if names and "/" in names[0] else ""
  if f"{first}/data.pkl" in names:
    return first
  tops = sorted({n.split("/", 1)[0] for n in names if n.count("/") == 1 and
                 n.endswith("/data.pkl")})
  if len(tops) == 1:
    return tops[0]
  return ""


def _load_zip(path: str, file: io.BufferedIOBase) -> Any:
  try:
    archive = zipfile.ZipFile(file)
  except zipfile.BadZipFile as e:
    raise TorchFileError(f"{path}: corrupt zip archive ({e}); {_ACCEPTED}") from e
  names = archive.namelist()
  top = _zip_top_folder(names)
  if not top:
    raise TorchFileError(
        f"{path}: a zip archive without a <folder>/data.pkl record, so not a torch.save file "
        f"(an .npz or other archive?); {_ACCEPTED}")
  byteorder = b"little"
  if f"{top}/byteorder" in names:
    byteorder = archive.read(f"{top}/byteorder").strip()
    if byteorder not in (b"little", b"big"):
      raise TorchFileError(f"{path}: unknown byte order {byteorder!r}")
  infos = {info.filename: info for info in archive.infolist()}

  def zip_blob(key: str) -> _Blob:
    name = f"{top}/data/{key}"
    info = infos.get(name)
    if info is None:
      raise TorchFileError(f"{path}: the pickle refers to storage {key!r} but {name} is missing")
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
      # torch stores records uncompressed: read them straight from the file, without the extra
      # copy `ZipFile.read` makes.
      def read() -> np.ndarray:
        file.seek(info.header_offset)
        signature, name_len, extra_len = _ZIP_LOCAL_HEADER.unpack(
            file.read(_ZIP_LOCAL_HEADER.size))
        if signature != _ZIP_LOCAL_SIGNATURE:
          raise TorchFileError(f"{path}: corrupt zip record {name}")
        start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_len + extra_len
        return _read_into(file, start, info.file_size, f"{path}:{name}")
    else:
      def read() -> np.ndarray:
        return np.frombuffer(bytearray(archive.read(name)), np.uint8)
    return _Blob(read, info.file_size, name)

  unpickler = _TorchUnpickler(
      io.BytesIO(archive.read(f"{top}/data.pkl")), big_endian=byteorder == b"big", legacy=False,
      zip_blob=zip_blob)
  return _unpickle(path, unpickler)


def _unpickle(path: str, unpickler: _TorchUnpickler) -> Any:
  try:
    return unpickler.load()
  except TorchFileError as e:
    raise TorchFileError(f"{path}: {e}") from e
  except Exception as e:  # A corrupt pickle can fail in many ways; all mean the same here.
    raise TorchFileError(
        f"{path}: cannot unpickle the saved object ({type(e).__name__}: {e})") from e


def _load_legacy(path: str, file: io.BufferedIOBase) -> Any:

  def header() -> Any:
    try:
      return _PlainUnpickler(file, encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
      raise TorchFileError(f"{path}: corrupt legacy torch file ({e})") from e

  if header() != _LEGACY_MAGIC:
    raise TorchFileError(f"{path}: invalid magic number; {_ACCEPTED}")
  version = header()
  if version != _LEGACY_PROTOCOL_VERSION:
    raise TorchFileError(f"{path}: unsupported legacy protocol version {version!r}")
  header()  # System info. Legacy storages are little endian whatever machine wrote them.
  unpickler = _TorchUnpickler(file, big_endian=False, legacy=True)
  obj = _unpickle(path, unpickler)
  keys = header()
  if not isinstance(keys, list):
    raise TorchFileError(f"{path}: corrupt legacy storage table")
  # Each storage: int64 little-endian element count, then the bytes. Record where each one is and
  # skip over it, so only the storages that are used get read.
  offset = file.tell()
  end = os.fstat(file.fileno()).st_size
  for key in keys:
    key = _ascii(key)
    storage = unpickler.storages.get(key)
    if storage is None:
      raise TorchFileError(f"{path}: storage {key!r} is in the table but not in the pickle")
    size = _element_size(storage.dtype)
    if size is None:
      raise _unsupported_dtype(storage.dtype, f"storage {key} of {path}")
    file.seek(offset)
    header_bytes = file.read(8)
    if len(header_bytes) != 8:
      raise TorchFileError(f"{path}: the file is truncated")
    (numel,) = struct.unpack("<q", header_bytes)
    nbytes = numel * size
    if numel < 0 or offset + 8 + nbytes > end:
      raise TorchFileError(f"{path}: the file is truncated or corrupt (storage {key!r})")
    start = offset + 8
    storage.blob = _Blob(
        lambda start=start, nbytes=nbytes, key=key: _read_into(file, start, nbytes,
                                                              f"{path}:storage {key}"),
        nbytes, f"storage {key}")
    offset = start + nbytes
  unpickler.finish_legacy_views()
  return obj


def _legacy_magic_prefixes() -> tuple[bytes, ...]:
  # The magic number as the first pickle writes it: protocol >= 2 as LONG1, 0 and 1 as text.
  long1 = b"\x8a\x0a" + _LEGACY_MAGIC.to_bytes(10, "little")
  return (long1, b"L" + str(_LEGACY_MAGIC).encode() + b"L\n")


def _is_legacy(head: bytes) -> bool:
  long1, text = _legacy_magic_prefixes()
  if head[:1] == b"\x80":  # PROTO opcode, then the protocol number
    start = 2
    if head[2:3] == b"\x95":  # FRAME opcode and its 8-byte length (protocol >= 4)
      start += 9
    return head[start:start + len(long1)] == long1
  return head.startswith(text)


def _not_torch_error(path: str, head: bytes) -> TorchFileError:
  hint = ""
  if len(head) >= 9 and head[8:9] == b"{":
    hint = " It looks like a .safetensors file; read that with the safetensors package."
  elif head.startswith(b"\x93NUMPY"):
    hint = " It is a numpy .npy file; use numpy.load."
  elif head.startswith(b"\x89HDF"):
    hint = " It is an HDF5 file (Keras?)."
  return TorchFileError(f"{path}: not a PyTorch weight file; {_ACCEPTED}.{hint}")


class _Loaded:
  """A loaded object whose tensors are still lazy, plus the open file they read from."""

  def __init__(self, path: str | os.PathLike[str]):
    self.path = os.fspath(path)
    if not os.path.exists(self.path):
      raise FileNotFoundError(f"no such PyTorch weight file: {self.path!r}")
    if os.path.isdir(self.path):
      raise TorchFileError(f"{self.path} is a directory; {_ACCEPTED}")
    self._file = open(self.path, "rb")  # Closed by close(): the lazy tensors read from it.
    try:
      self.obj = self._load()
    except BaseException:
      self._file.close()
      raise

  def _load(self) -> Any:
    path, file = self.path, self._file
    head = file.read(64)
    file.seek(0)
    # The legacy check goes first: it is exact, whereas `is_zipfile` looks for an end-of-archive
    # record near the end, which a legacy file's raw tensor bytes could contain by chance.
    if _is_legacy(head):
      return _load_legacy(path, file)
    if zipfile.is_zipfile(file):
      file.seek(0)
      return _load_zip(path, file)
    try:
      is_tar = tarfile.is_tarfile(path)
    except OSError:
      is_tar = False
    if is_tar:
      raise TorchFileError(
          f"{path}: a tar archive. If it was written by torch.save of torch <= 0.3 (the tar "
          "format), it is not supported: load and re-save it with a newer torch. Otherwise "
          f"it is not a PyTorch weight file; {_ACCEPTED}")
    raise _not_torch_error(path, head)

  def close(self) -> None:
    self._file.close()

  def __enter__(self) -> _Loaded:
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


def _materialize(obj: Any, memo: dict[int, Any], what: str = "") -> Any:
  """Replaces lazy tensors by numpy arrays throughout `obj` (in place for mutable containers)."""
  if id(obj) in memo:
    return memo[id(obj)]
  if isinstance(obj, _LazyTensor | _UnsupportedTensor | _Storage):
    memo[id(obj)] = result = obj.materialize(what)
    return result
  if isinstance(obj, dict):
    memo[id(obj)] = obj
    for k in list(obj):
      obj[k] = _materialize(obj[k], memo, f"{what}.{k}" if what else str(k))
    return obj
  if isinstance(obj, list):
    memo[id(obj)] = obj
    for i, v in enumerate(obj):
      obj[i] = _materialize(v, memo, f"{what}[{i}]")
    return obj
  if type(obj) is tuple:  # Subclasses (namedtuple-like placeholders) have no safe constructor.
    items = [_materialize(v, memo, f"{what}[{i}]") for i, v in enumerate(obj)]
    memo[id(obj)] = result = tuple(items)
    return result
  if isinstance(obj, Placeholder):
    memo[id(obj)] = obj
    obj.args = _materialize(obj.args, memo, what)
    obj.kwargs = _materialize(obj.kwargs, memo, what)
    obj.state = _materialize(obj.state, memo, what)
    obj.dict_items = _materialize(obj.dict_items, memo, what)
    obj.list_items = _materialize(obj.list_items, memo, what)
    return obj
  return obj


# --------------------------------------------------------------------------------------------------
# Public API


def load_torch_file(path: str | os.PathLike[str]) -> Any:
  """Loads everything a `torch.save` file holds, with tensors as numpy arrays.

  Args:
    path: a file written by `torch.save` (zip or legacy format): `.pt`, `.pth`, `.ckpt`, `.bin`.

  Returns:
    The saved object: dicts, lists, tuples and plain values as pickled, tensors and
    `nn.Parameter`s as numpy arrays (bfloat16 widened to float32), `torch.Size` as a tuple,
    torch dtypes as `TorchDtype`, and any other class or function as a `Placeholder`.

  Raises:
    FileNotFoundError: `path` does not exist.
    TorchFileError: not a PyTorch file, a corrupt one, or a tensor kind that cannot be read.
    UnsupportedDtypeError: a tensor's dtype has no supported numpy equivalent.
  """
  with _Loaded(path) as loaded:
    try:
      return _materialize(loaded.obj, {})
    except TorchFileError as e:
      raise type(e)(f"{loaded.path}: {e}") from e


def _is_tensor(value: Any) -> bool:
  return isinstance(value, _LazyTensor | _UnsupportedTensor)


def _tensor_dicts(obj: Mapping[Any, Any]) -> Iterator[str]:
  for k, v in obj.items():
    if isinstance(v, Mapping) and v and all(_is_tensor(t) for t in v.values()):
      yield str(k)


def load_state_dict(path: str | os.PathLike[str], *, key: str | None = None,
                    strip_prefix: str | None = None) -> dict[str, np.ndarray]:
  """Loads the flat `name -> array` state dict of a PyTorch weight file.

  Only the selected tensors are read, so e.g. the optimizer state in a Lightning checkpoint
  costs neither time nor memory.

  Args:
    path: a file written by `torch.save`.
    key: the top-level entry that holds the state dict (e.g. "model", "params_ema"). By
      default a Lightning checkpoint's "state_dict" entry is used, and otherwise the saved
      object itself.
    strip_prefix: keep only the names starting with this prefix (e.g. "generator.") and
      drop it from them.

  Returns:
    The tensors as numpy arrays in file order, under their (stripped) names.

  Raises:
    FileNotFoundError: `path` does not exist.
    TorchFileError: not a PyTorch file, no state dict at `key`, a value that is not a tensor,
      or no name with `strip_prefix`.
    UnsupportedDtypeError: a selected tensor's dtype has no supported numpy equivalent.
  """
  with _Loaded(path) as loaded:
    path = loaded.path
    obj = loaded.obj
    if key is not None:
      if not isinstance(obj, Mapping) or key not in obj:
        have = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise TorchFileError(f"{path}: no entry {key!r} in the saved object; it has {have}")
      obj = obj[key]
      where = f"entry {key!r}"
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
      obj = obj["state_dict"]  # A PyTorch Lightning checkpoint.
      where = "entry 'state_dict'"
    else:
      where = "the saved object"
    if not isinstance(obj, Mapping):
      raise TorchFileError(f"{path}: {where} is a {type(obj).__name__}, not a state dict")
    for name, value in obj.items():
      if not isinstance(name, str) or not _is_tensor(value):
        candidates = list(_tensor_dicts(obj))
        hint = f"; pass key= one of {candidates}" if candidates else ""
        raise TorchFileError(
            f"{path}: {where} is not a flat state dict: {name!r} holds a "
            f"{type(value).__name__}, not a tensor{hint}")
    names = list(obj)
    if strip_prefix is not None:
      names = [n for n in names if n.startswith(strip_prefix)]
      if not names:
        tops = sorted({n.split(".", 1)[0] + "." for n in obj})
        raise TorchFileError(
            f"{path}: no tensor name in {where} starts with {strip_prefix!r}; the names "
            f"start with {tops}")
    memo: dict[int, Any] = {}
    out = {}
    for name in names:
      new_name = name[len(strip_prefix):] if strip_prefix is not None else name
      try:
        out[new_name] = _materialize(obj[name], memo, name)
      except TorchFileError as e:
        raise type(e)(f"{path}: {e}") from e
    return out


# --------------------------------------------------------------------------------------------------
# Writing


class _PickleWriter:
  """Emits protocol-2 pickle opcodes by hand.

  `pickle.Pickler` cannot write a global it cannot import (`torch._utils._rebuild_tensor_v2`),
  and the opcodes for a state dict are few.
  """

  def __init__(self):
    self.out = bytearray(b"\x80\x02")  # PROTO 2

  def global_(self, module: str, name: str) -> None:
    self.out += b"c" + f"{module}\n{name}\n".encode("ascii")

  def mark(self) -> None:
    self.out += b"("

  def str_(self, text: str) -> None:
    data = text.encode("utf-8")
    self.out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE

  def int_(self, value: int) -> None:
    if 0 <= value < 256:
      self.out += b"K" + bytes([value])  # BININT1
    elif -(2**31) <= value < 2**31:
      self.out += b"J" + struct.pack("<i", value)  # BININT
    else:
      data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
      self.out += b"\x8a" + bytes([len(data)]) + data  # LONG1

  def int_tuple(self, values: tuple[int, ...]) -> None:
    if not values:
      self.out += b")"  # EMPTY_TUPLE
      return
    self.mark()
    for v in values:
      self.int_(v)
    self.out += b"t"  # TUPLE

  def empty_ordered_dict(self) -> None:
    self.global_("collections", "OrderedDict")
    self.out += b")R"  # EMPTY_TUPLE, REDUCE

  def op(self, code: bytes) -> None:
    self.out += code


# numpy dtype name -> legacy storage class; the dtypes `_rebuild_tensor_v2` can express.
_NUMPY_TO_STORAGE = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage",  # ml_dtypes.bfloat16, as used by JAX
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
    "complex64": "ComplexFloatStorage",
    "complex128": "ComplexDoubleStorage",
}


def _zip_write(archive: zipfile.ZipFile, file: io.BufferedIOBase, name: str, data: Any,
               nbytes: int) -> None:
  """Writes one stored record whose data start at a multiple of 64 bytes, as torch does."""
  info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
  info.compress_type = zipfile.ZIP_STORED
  info.file_size = nbytes
  # The local header is 30 bytes + name + extra; zipfile adds a 20-byte zip64 field to it for
  # records it deems large. Pad the extra field (id "FB" like torch's writer) to align the data.
  zip64 = 20 if nbytes * 1.05 > zipfile.ZIP64_LIMIT else 0
  start = file.tell() + _ZIP_LOCAL_HEADER.size + len(name.encode("utf-8")) + zip64 + 4
  pad = -start % _STORAGE_ALIGNMENT
  info.extra = b"FB" + struct.pack("<H", pad) + b"\0" * pad
  with archive.open(info, "w") as out:
    out.write(data)


def save_torch_state_dict(path: str | os.PathLike[str], state_dict: Mapping[str, Any]) -> None:
  """Writes arrays as a PyTorch state dict file that `torch.load` reads.

  The file is the zip format of `torch.save(OrderedDict(name -> tensor))`: contiguous CPU
  tensors, one storage each, little endian, records aligned to 64 bytes. It loads with
  `torch.load(path, weights_only=True)` (and `mmap=True`) and with `load_state_dict`.

  Args:
    path: where to write (conventionally `.pt` or `.pth`); overwritten if it exists.
    state_dict: tensor name -> array (anything `np.asarray` takes, e.g. a JAX array). dtypes:
      float16/32/64, bfloat16 (ml_dtypes, as JAX uses), int8/16/32/64, uint8, bool,
      complex64/128.

  Raises:
    TypeError: a name is not a string.
    UnsupportedDtypeError: an array's dtype has no torch storage type.
  """
  arrays: list[tuple[str, np.ndarray, str]] = []
  for name, value in state_dict.items():
    if not isinstance(name, str):
      raise TypeError(f"state dict names must be strings, got {name!r}")
    array = np.asarray(value)
    storage = _NUMPY_TO_STORAGE.get(array.dtype.name)
    if storage is None:
      raise UnsupportedDtypeError(
          f"cannot save {name!r}: dtype {array.dtype} has no torch storage type; supported: "
          f"{', '.join(sorted(_NUMPY_TO_STORAGE))}")
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
      array = array.astype(array.dtype.newbyteorder("<"))  # torch files are little endian.
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    arrays.append((name, np.array(array, order="C", copy=None), storage))

  pickle_out = _PickleWriter()
  pickle_out.empty_ordered_dict()
  pickle_out.mark()
  for index, (name, array, storage) in enumerate(arrays):
    pickle_out.str_(name)
    pickle_out.global_("torch._utils", "_rebuild_tensor_v2")
    pickle_out.mark()
    # Persistent id ("storage", storage type, key, location, numel).
    pickle_out.mark()
    pickle_out.str_("storage")
    pickle_out.global_("torch", storage)
    pickle_out.str_(str(index))
    pickle_out.str_("cpu")
    pickle_out.int_(array.size)
    pickle_out.op(b"t")  # TUPLE
    pickle_out.op(b"Q")  # BINPERSID
    pickle_out.int_(0)  # storage offset
    pickle_out.int_tuple(array.shape)
    strides = tuple(int(math.prod(array.shape[i + 1:])) for i in range(array.ndim))
    pickle_out.int_tuple(strides)
    pickle_out.op(b"\x89")  # NEWFALSE: requires_grad
    pickle_out.empty_ordered_dict()  # backward hooks
    pickle_out.op(b"t")  # TUPLE
    pickle_out.op(b"R")  # REDUCE
  pickle_out.op(b"u")  # SETITEMS
  pickle_out.op(b".")  # STOP

  top = "archive"
  with open(os.fspath(path), "wb") as file, zipfile.ZipFile(file, "w") as archive:
    _zip_write(archive, file, f"{top}/data.pkl", bytes(pickle_out.out), len(pickle_out.out))
    _zip_write(archive, file, f"{top}/byteorder", b"little", 6)
    for index, (_, array, _) in enumerate(arrays):
      raw = array.reshape(-1).view(np.uint8)
      _zip_write(archive, file, f"{top}/data/{index}", raw.data, raw.nbytes)
    # The serialization version torch's zip reader checks.
    _zip_write(archive, file, f"{top}/version", b"3\n", 2)
