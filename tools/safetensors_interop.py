#!/usr/bin/env python3
"""Safetensors interop between gvae (Swift) and the Python `safetensors` library.

  safetensors_interop.py write PATH   write the fixture Tests/NNTests/Fixtures/python.safetensors
  safetensors_interop.py check PATH   check a file written by the Swift test
                                      (NNTests/SafeTensorsTests: swiftWrittenFileForPython)

Needs `pip install safetensors numpy`. The expected values here and in
Tests/NNTests/SafeTensorsTests.swift must agree.
"""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def fixture_tensors():
    return {
        "encoder.weight": (np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5) / 4,
        "encoder.bias": np.array([1.5, -2.0, 1e-3], dtype=np.float32),
        "half": np.array([0.5, -1.25, 65504.0, 6e-8], dtype=np.float16),
        "double": np.array([[3.141592653589793]], dtype=np.float64),
        "steps": np.array([1, -2, 3000000000], dtype=np.int64),
        "scalar": np.array(7.0, dtype=np.float32),
    }


def swift_expected():
    # What the Swift test writes: F32 "a" [2, 2] = [[1, 2], [3, 4]] / 8, F16 "b" [3] = [0.5, -2, 1024].
    return {
        "a": np.array([[1, 2], [3, 4]], dtype=np.float32) / 8,
        "b": np.array([0.5, -2, 1024], dtype=np.float16),
    }


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    path = sys.argv[2]
    if sys.argv[1] == "write":
        save_file(fixture_tensors(), path, metadata={"source": "python", "format": "np"})
        print(f"wrote {path}")
        return
    got = load_file(path)
    for name, want in swift_expected().items():
        assert name in got, f"missing {name}"
        assert got[name].dtype == want.dtype, f"{name}: dtype {got[name].dtype} vs {want.dtype}"
        assert got[name].shape == want.shape, f"{name}: shape {got[name].shape} vs {want.shape}"
        assert np.array_equal(got[name], want), f"{name}: {got[name]} vs {want}"
    with safe_open(path, framework="np") as f:
        assert f.metadata() == {"source": "swift"}, f.metadata()
    print("OK")


if __name__ == "__main__":
    main()
