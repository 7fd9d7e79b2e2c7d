"""Make tests/data/py_reference.safetensors with the reference implementation.

test_safetensors.c reads the file and checks every value below, so lowbit's reader is
tested against a file it did not write. Regenerate with
    pip install safetensors numpy && python3 tests/data/make_py_reference.py
(made with safetensors 0.8.0, numpy 2.4). The bytes can differ between runs only in
the order of the __metadata__ keys, which the reference writer keeps in a hash map.
If you change a value here, change the C test too.
"""
import os

import numpy as np
from safetensors.numpy import save_file

tensors = {
    "weight": (np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0),  # -1.0 .. 1.5
    "bias": np.array([1.5, -2.25], dtype=np.float64),
    "ids": np.array([-1, 0, 1 << 40, 7], dtype=np.int64),
    "mask": np.array([[0, 255], [1, 128]], dtype=np.uint8),
    "count": np.array(42, dtype=np.int32),  # scalar: shape []
    "empty": np.zeros((0, 3), dtype=np.float32),
    "flags": np.array([True, False, True]),
    "half": np.array([1.0, -2.0, 0.5], dtype=np.float16),  # bits 0x3C00 0xC000 0x3800
    "conv.w": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
}
metadata = {"format": "np", "lowbit.test": "py_reference", "unicode": "h\u00e9llo \u2713"}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_reference.safetensors")
save_file(tensors, out, metadata=metadata)
print(out, os.path.getsize(out), "bytes")
