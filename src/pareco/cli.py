"""Command line: ``pareco models | train | search | front | export | compare``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from pareco import models


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def parse_size(text: str) -> tuple[int, int, int]:
    """``3x32x32`` → (3, 32, 32)."""
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(
            f"--input-size must look like 3x32x32 (channels x height x width), got {text!r}"
        ) from None
    return c, h, w


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def cmd_models(args: argparse.Namespace) -> None:
    import pareco

    names = [args.name] if args.name else models.names()
    rows = []
    for name in names:
        entry = models.entry(name)
        c, h, w = parse_size(args.input_size) if args.input_size else (3, *entry.input_size)
        kwargs = {}
        if name == "mobilenetv2" and h <= 64:
            kwargs["stem"] = "cifar"
        if name == "resnet18" and h <= 64:
            kwargs["small_input"] = True
        model = models.create(name, num_classes=args.num_classes, in_channels=c, **kwargs)
        net = pareco.slim(model, torch.zeros(1, c, h, w), ignored=entry.ignored)
        full = net.space.largest()
        rows.append((name, f"{c}x{h}x{w}", net.space.dim, human(net.cost(full, "macs").item()),
                     human(net.cost(full, "params").item()), human(net.cost(full, "memory").item()),
                     entry.summary))  # fmt: skip
        if args.describe:
            print(net.space.describe(), end="\n\n")
    header = ("model", "input", "groups", "MACs", "params", "peak mem", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(wd) for v, wd in zip(r, widths)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pareco",
        description="Train slimmable networks with per-group widths optimized jointly (PareCO).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list the model zoo with groups and costs")
    p.add_argument("--name", choices=models.names(), help="only this model")
    p.add_argument("--input-size", help="CxHxW (default: each model's own size, 3 channels)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--describe", action="store_true", help="print every channel group")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"pareco {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pareco {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
