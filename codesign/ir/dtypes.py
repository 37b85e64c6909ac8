"""Element types of IR tensors.

A `DType` names the *storage* type of a tensor element.  Its bit width is what every cost model
uses for bytes moved; its NumPy type is what the reference interpreter computes with.  Low-bit
integer and float formats (INT4, FP8, FP4, ...) are stored by the interpreter in a wider NumPy
type holding exactly representable values (simulated quantisation).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # NumPy loads where values are computed (the interpreter, passes), not to name a type
    import numpy as np


class DType(Enum):
    """Storage element type; the value is the name used in printed IR."""

    F64 = "f64"
    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    FP8_E4M3 = "fp8e4m3"
    FP8_E5M2 = "fp8e5m2"
    FP4_E2M1 = "fp4e2m1"
    FP6_E2M3 = "fp6e2m3"
    FP6_E3M2 = "fp6e3m2"
    FP3_E2M0 = "fp3e2m0"
    E8M0 = "e8m0"  # unsigned power-of-two exponent (OCP MX block scales)
    I64 = "i64"
    I32 = "i32"
    I16 = "i16"
    I8 = "i8"
    I7 = "i7"
    I6 = "i6"
    I5 = "i5"
    I4 = "i4"
    I3 = "i3"
    I2 = "i2"
    I1 = "i1"
    U8 = "u8"
    BOOL = "bool"

    @property
    def bits(self) -> int:
        """Storage width in bits."""
        return _BITS[self]

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.BOOL

    @property
    def numpy(self) -> np.dtype:
        """The NumPy type the reference interpreter holds this type in."""
        import numpy as np

        return np.dtype(_NUMPY[self])

    @staticmethod
    def from_numpy(dtype: np.dtype | type) -> DType:
        """The DType of a NumPy dtype; raises ValueError for unsupported ones."""
        import numpy as np

        dt = np.dtype(dtype)
        for key, value in _FROM_NUMPY.items():
            if dt == np.dtype(key):
                return value
        raise ValueError(f"unsupported NumPy dtype {dt}")

    def round(self, values: np.ndarray) -> np.ndarray:
        """``values`` rounded to this storage type, in its NumPy holder (see `numpy`).

        F16 and BF16 round to nearest, ties to even, overflowing to infinity as IEEE casts do
        (NumPy's float16 cast; BF16 keeps the top 16 bits of the rounded float32). Other types
        are only converted to their holder: integer and minifloat rounding is the quantization
        passes' business (they choose scales and saturation).
        """
        import numpy as np

        if self is DType.BF16:
            return _round_bf16(np.asarray(values, dtype=np.float32))
        return np.asarray(values).astype(self.numpy, copy=False)


def _round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), held in float32; NaN stays NaN."""
    import numpy as np

    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, out)


_BITS = {
    DType.F64: 64, DType.F32: 32, DType.F16: 16, DType.BF16: 16, DType.FP8_E4M3: 8,
    DType.FP8_E5M2: 8, DType.FP4_E2M1: 4, DType.I64: 64, DType.I32: 32, DType.I16: 16,
    DType.I8: 8, DType.I4: 4, DType.I2: 2, DType.I1: 1, DType.U8: 8, DType.BOOL: 8,
    DType.FP6_E2M3: 6, DType.FP6_E3M2: 6, DType.FP3_E2M0: 3, DType.E8M0: 8, DType.I7: 7,
    DType.I6: 6, DType.I5: 5, DType.I3: 3,
}  # fmt: skip
_FLOATS = {
    DType.F64, DType.F32, DType.F16, DType.BF16, DType.FP8_E4M3, DType.FP8_E5M2, DType.FP4_E2M1,
    DType.FP6_E2M3, DType.FP6_E3M2, DType.FP3_E2M0, DType.E8M0,
}  # fmt: skip
# Sub-byte and 8-bit float formats are simulated in float32 / int8 holders.
_NUMPY = {
    DType.F64: "float64", DType.F32: "float32", DType.F16: "float16", DType.BF16: "float32",
    DType.FP8_E4M3: "float32", DType.FP8_E5M2: "float32", DType.FP4_E2M1: "float32",
    DType.I64: "int64", DType.I32: "int32", DType.I16: "int16", DType.I8: "int8",
    DType.I4: "int8", DType.I2: "int8", DType.I1: "int8", DType.U8: "uint8", DType.BOOL: "bool",
    DType.FP6_E2M3: "float32", DType.FP6_E3M2: "float32", DType.FP3_E2M0: "float32",
    DType.E8M0: "float32", DType.I7: "int8", DType.I6: "int8", DType.I5: "int8", DType.I3: "int8",
}  # fmt: skip
_FROM_NUMPY = {
    "float64": DType.F64, "float32": DType.F32, "float16": DType.F16, "int64": DType.I64,
    "int32": DType.I32, "int16": DType.I16, "int8": DType.I8, "uint8": DType.U8,
    "bool": DType.BOOL,
}  # fmt: skip
