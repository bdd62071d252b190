"""Reproduce the CPU crash that keeps pareco's trainer off channels_last on the CPU (no pareco).

The weight gradient of a 1x1, stride-2 convolution (every ResNet projection shortcut) corrupts the
heap on the CPU build of torch 2.13.0 when input and weight are channels_last; the same loop in the
default layout is fine. Each layout runs in its own process, so the crash is reported, not suffered:

    .venv/bin/python scripts/repro_channels_last_cpu.py
"""

import subprocess
import sys

LOOP = """
import torch, torch.nn.functional as F
torch.set_num_threads(1)
fmt = torch.{fmt}
w = torch.randn(8, 4, 1, 1).contiguous(memory_format=fmt).requires_grad_()
x = torch.randn(32, 4, 28, 28).contiguous(memory_format=fmt)
for _ in range(30):
    F.conv2d(x, w, stride=2).sum().backward()
"""

if __name__ == "__main__":
    import torch

    print(f"torch {torch.__version__}")
    for fmt in ("contiguous_format", "channels_last"):
        proc = subprocess.run([sys.executable, "-c", LOOP.format(fmt=fmt)], capture_output=True)
        status = "ok" if proc.returncode == 0 else f"crashed (exit status {proc.returncode})"
        print(f"1x1 stride-2 conv backward, {fmt}: {status}")
