#!/usr/bin/env python3
"""Records reference torch.randn outputs for test/unit/diffusion/noise.test.ts.

Writes torch-randn.json: for each (seed, shape), the SHA-256 of the whole float32 output (little-endian bytes)
and a few values, plus the torch version and CPU capability that produced them. The committed file came from
Debian bookworm's python3-torch 1.13.1+dfsg-4 (it reports itself as 1.13.0a0). Run with a CPU torch on x86-64:
    python3 test/reference/torch_randn.py > test/reference/torch-randn.json
"""
import hashlib
import json
import platform
import sys

import torch

CASES = [
    (0, [1, 4, 128, 128]),     # 1024² latent
    (42, [1, 4, 128, 128]),
    (1, [1, 4, 96, 168]),      # 1344×768 latent
    (2, [1, 4, 80, 192]),      # 1536×640 latent
    (3, [1, 4, 152, 104]),     # 832×1216 latent
    (0, [1, 4, 125, 125]),     # 1000×1000 px: 62,500 values, the tail path
    (7, [1, 4, 64, 64]),
    (123456789, [17]),         # one block plus the tail
    (4294967295, [31]),
    (4294967296, [16]),        # seeds wrap at 2^32
    (9007199254740991, [1, 4, 8, 8]),
    (5, [37]),
    (0, [3]),                  # the double-precision scalar path
    (42, [15]),
    (1, [1]),
]


def main() -> None:
    cases = []
    for seed, shape in CASES:
        generator = torch.Generator().manual_seed(seed)
        values = torch.randn(shape, generator=generator, dtype=torch.float32).contiguous()
        raw = values.numpy().astype("<f4").tobytes()
        flat = values.flatten().tolist()
        cases.append({
            "seed": seed,
            "shape": shape,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "first": flat[:4],
            "last": flat[-4:],
        })
    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") and hasattr(torch.backends.cpu, "get_cpu_capability") else "unknown (torch < 2.0 runs the AVX2 kernel on AVX2 and AVX-512 CPUs)"
    json.dump({
        "tool": f"torch {torch.__version__} (python {platform.python_version()}, {platform.machine()})",
        "cpu_capability": capability,
        "generator": "torch.Generator().manual_seed(seed); torch.randn(shape, generator=generator, dtype=torch.float32)",
        "cases": cases,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
