"""The "arrays" payload kind: the classifier as named numpy arrays in a framing read without pickle.

Framing (integers big-endian): magic b"FTARR1\n", a 4-byte header length H, H bytes of UTF-8 JSON
`{"arrays": [{"name", "dtype", "shape"}, ...]}`, then each array's bytes (C order), in the
header's order and nothing after. dtypes are limited to "<f8", "<f4", "<i8" and "<U{n}": no
object arrays, so no pickle; arrays come out of `np.frombuffer`, with sizes checked first.

Members:

    classes          <U   (k,)        the SVM's classes_, in order
    support_vectors  f8   (n_sv, dim)
    dual_coef        f8   (k-1, n_sv)
    intercept        f8   (k(k-1)/2,)
    n_support        i8   (k,)        sums to n_sv
    kernel           <U   ()          linear | rbf | poly | sigmoid
    kernel_params    f8   (3,)        gamma, coef0, degree
    calibration      f8   (c, 2)      sigmoid (a, b) per class; c = 1 for two classes, 0 for none
    gallery          f4   (n, dim)    enrolled embeddings
    gallery_labels   <U   (n,)

Every member, dtype and shape is checked before anything is used; any defect is a BundleError
(bad_payload). The payload is read only after its signature and hash were checked.
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.svm_arrays import KERNELS, ArraySVM

PAYLOAD_KIND = "arrays"
MAGIC = b"FTARR1\n"
MAX_HEADER_BYTES = 64 * 1024
MAX_DIMS = 4
_HEADER_LEN = struct.Struct(">I")
_DTYPE_RE = re.compile(r"^(<f8|<f4|<i8|<U[1-9][0-9]{0,3})$")
MEMBERS = (
    "classes",
    "support_vectors",
    "dual_coef",
    "intercept",
    "n_support",
    "kernel",
    "kernel_params",
    "calibration",
    "gallery",
    "gallery_labels",
)


def encode_members(members: dict[str, npt.NDArray[Any]]) -> bytes:
    """The framing of named arrays (tests use it to build defective payloads)."""
    entries = []
    blobs = []
    for name, array in members.items():
        contiguous = np.asarray(array, order="C")  # ascontiguousarray would make 0-d arrays 1-d
        dtype = contiguous.dtype.newbyteorder("<") if contiguous.dtype.byteorder == ">" else contiguous.dtype
        contiguous = contiguous.astype(dtype, copy=False)
        entries.append({"name": name, "dtype": dtype.str, "shape": list(contiguous.shape)})
        blobs.append(contiguous.tobytes())
    header = json.dumps({"arrays": entries}, separators=(",", ":")).encode()
    return MAGIC + _HEADER_LEN.pack(len(header)) + header + b"".join(blobs)


def dump_arrays(svm: ArraySVM, gallery: npt.ArrayLike, gallery_labels: list[str]) -> bytes:
    """The payload bytes the trainer signs."""
    calibration = svm.calibration if svm.calibration is not None else np.zeros((0, 2))
    return encode_members(
        {
            "classes": np.asarray(svm.classes, dtype=np.str_),
            "support_vectors": svm.support_vectors.astype(np.float64),
            "dual_coef": svm.dual_coef.astype(np.float64),
            "intercept": svm.intercept.astype(np.float64),
            "n_support": svm.n_support.astype(np.int64),
            "kernel": np.asarray(svm.kernel, dtype=np.str_),
            "kernel_params": np.array([svm.gamma, svm.coef0, float(svm.degree)], dtype=np.float64),
            "calibration": calibration.astype(np.float64),
            "gallery": np.asarray(gallery, dtype=np.float32),
            "gallery_labels": np.asarray(gallery_labels, dtype=np.str_),
        }
    )


def _bad(reason: str) -> BundleError:
    return BundleError(RejectCode.BAD_PAYLOAD, f"arrays payload: {reason}")


def _entries(payload: bytes) -> tuple[list[Any], int]:
    if payload[: len(MAGIC)] != MAGIC or len(payload) < len(MAGIC) + _HEADER_LEN.size:
        raise _bad("no arrays framing (bad magic or too short)")
    (length,) = _HEADER_LEN.unpack_from(payload, len(MAGIC))
    start = len(MAGIC) + _HEADER_LEN.size
    if length > MAX_HEADER_BYTES or start + length > len(payload):
        raise _bad(f"header length {length} does not fit")
    try:
        header = json.loads(payload[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(f"header is not UTF-8 JSON: {exc}") from None
    entries = header.get("arrays") if isinstance(header, dict) and set(header) == {"arrays"} else None
    if not isinstance(entries, list):
        raise _bad("header has no array list")
    return entries, start + length


def decode_members(payload: bytes) -> dict[str, npt.NDArray[Any]]:
    """The named arrays of a payload; every dtype, shape and length checked before reading."""
    entries, offset = _entries(payload)
    out: dict[str, npt.NDArray[Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise _bad("an array entry is not {name, dtype, shape}")
        name, dtype_text, shape = entry["name"], entry["dtype"], entry["shape"]
        if not isinstance(name, str) or name in out:
            raise _bad(f"array name {name!r} is not a new string")
        if not isinstance(dtype_text, str) or not _DTYPE_RE.match(dtype_text):
            raise _bad(f"{name}: dtype {dtype_text!r} is not allowed")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in shape)
        ):
            raise _bad(f"{name}: shape {shape!r} is not allowed")
        dtype = np.dtype(dtype_text)
        count = math.prod(shape)
        size = count * dtype.itemsize
        if offset + size > len(payload):
            raise _bad(f"{name}: {size} bytes do not fit in the payload")
        out[name] = np.frombuffer(payload, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += size
    if offset != len(payload):
        raise _bad(f"{len(payload) - offset} bytes after the last array")
    return out


def _read_members(payload: bytes) -> dict[str, npt.NDArray[Any]]:
    members = decode_members(payload)
    if sorted(members) != sorted(MEMBERS):
        raise _bad(f"members {sorted(members)} are not {sorted(MEMBERS)}")
    return members


def _check(array: npt.NDArray[Any], name: str, kind: str, ndim: int) -> npt.NDArray[Any]:
    if array.dtype.kind != kind or array.ndim != ndim:
        raise _bad(f"{name} is {array.dtype}/{array.ndim}-d, expected kind {kind!r} {ndim}-d")
    if kind == "f" and not np.all(np.isfinite(array)):
        raise _bad(f"{name} has non-finite values")
    return array


def load_arrays(payload: bytes) -> dict[str, Any]:
    """{"estimator": ArraySVM, "gallery", "gallery_labels"}, with every shape checked."""
    m = _read_members(payload)
    classes = _check(m["classes"], "classes", "U", 1)
    vectors = _check(m["support_vectors"], "support_vectors", "f", 2)
    dual = _check(m["dual_coef"], "dual_coef", "f", 2)
    intercept = _check(m["intercept"], "intercept", "f", 1)
    n_support = _check(m["n_support"], "n_support", "i", 1)
    kernel = _check(m["kernel"], "kernel", "U", 0)
    params = _check(m["kernel_params"], "kernel_params", "f", 1)
    calibration = _check(m["calibration"], "calibration", "f", 2)
    gallery = _check(m["gallery"], "gallery", "f", 2)
    gallery_labels = _check(m["gallery_labels"], "gallery_labels", "U", 1)
    k, n_sv = len(classes), vectors.shape[0]
    if k < 2 or len(set(classes.tolist())) != k:
        raise _bad("needs at least two distinct classes")
    if dual.shape != (k - 1, n_sv) or intercept.shape != (k * (k - 1) // 2,):
        raise _bad("dual_coef or intercept does not fit the classes and support vectors")
    if n_support.shape != (k,) or np.any(n_support < 0) or int(n_support.sum()) != n_sv:
        raise _bad("n_support does not count the support vectors per class")
    if str(kernel) not in KERNELS or params.shape != (3,):
        raise _bad(f"kernel {str(kernel)!r} or its parameters are not supported")
    gamma, coef0, degree = (float(v) for v in params)
    if gamma < 0 or degree != int(degree) or not 0 <= degree <= 10:
        raise _bad("kernel parameters out of range")
    if calibration.shape[1:] != (2,) or calibration.shape[0] not in (0, 1 if k == 2 else k):
        raise _bad("calibration has the wrong shape")
    if gallery.shape[1] != vectors.shape[1]:
        raise _bad("gallery and support vectors differ in dimension")
    svm = ArraySVM(
        classes=tuple(str(c) for c in classes),
        support_vectors=vectors.astype(np.float64),
        dual_coef=dual.astype(np.float64),
        intercept=intercept.astype(np.float64),
        n_support=n_support.astype(np.int64),
        kernel=str(kernel),
        gamma=gamma,
        coef0=coef0,
        degree=int(degree),
        calibration=calibration.astype(np.float64) if calibration.shape[0] else None,
    )
    return {"estimator": svm, "gallery": gallery, "gallery_labels": gallery_labels}
