#!/usr/bin/env python3
"""Compare two `nativemi hidden` files tensor by tensor: the worst relative L2 difference over the F32 tensors.

    python3 scripts/compare_hidden.py CANDIDATE.safetensors REFERENCE.safetensors [TOLERANCE]

Standard library only (the GPU machine and CI both run it): the safetensors header is JSON after an 8-byte length. Prints one
line starting with "pass" or "FAIL" and exits 0 or 1. Non-finite reference values are left out (padding is zero, never NaN).
"""
import json
import math
import struct
import sys


def load(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        out[name] = struct.unpack(f"<{(end - start) // 4}f", body[start:end])
    return out


def main():
    candidate, reference = load(sys.argv[1]), load(sys.argv[2])
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4
    worst, worst_name = 0.0, ""
    for name in sorted(reference):
        x, y = candidate.get(name, ()), reference[name]
        if len(x) != len(y):
            print(f"FAIL: {name} has {len(x)} values, the reference {len(y)}")
            return 1
        diff = math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y) if math.isfinite(q)))
        norm = math.sqrt(sum(q * q for q in y if math.isfinite(q)))
        relative = diff / max(norm, 1e-30)
        if relative > worst or math.isnan(relative):
            worst, worst_name = relative, name
    ok = worst < tolerance and set(candidate) == set(reference)
    print(f"{'pass' if ok else 'FAIL'}: worst relative L2 {worst:.2e} ({worst_name}) over {len(reference)} tensors, tolerance {tolerance:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
