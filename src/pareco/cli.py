"""Command line: ``pareco models | train | search | front | export | compare``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from pareco import models


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _user_errors() -> tuple[type[Exception], ...]:
    from pareco.checkpoint import CheckpointError
    from pareco.config import ConfigError
    from pareco.data import DatasetError
    from pareco.export import ExportError
    from pareco.model_path import ModelSpecError
    from pareco.slim import SlimError
    from pareco.train import RunError

    return (UserError, ConfigError, DatasetError, CheckpointError, RunError, SlimError, ExportError,
            ModelSpecError)  # fmt: skip


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


def _train_flags(p: argparse.ArgumentParser) -> None:
    """Flags mirror TrainConfig; only flags given on the command line override the config file."""
    from pareco.config import COSTS, DATASETS, METHODS

    S = argparse.SUPPRESS
    p.add_argument("--config", help="YAML or JSON file of TrainConfig keys")
    p.add_argument("--out", default=S, help="run directory (default runs/default)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--model", default=S,
                   help="a zoo name (pareco models) or package.module:factory")  # fmt: skip
    p.add_argument("--data", default=S, choices=DATASETS)
    p.add_argument("--data-dir", default=S, help="dataset directory")
    p.add_argument("--method", default=S, choices=METHODS)
    p.add_argument("--cost", default=S, choices=COSTS, help="cost objective of the search")
    p.add_argument("--epochs", type=int, default=S)
    p.add_argument("--batch-size", type=int, default=S)
    p.add_argument("--lr", type=float, default=S, help="default 0.1 x batch/256")
    p.add_argument("--weight-decay", type=float, default=S)
    p.add_argument("--warmup-epochs", type=float, default=S)
    p.add_argument("--schedule", default=S, choices=("linear", "cosine"))
    p.add_argument("--distill-warmup-epochs", type=float, default=S,
                   help="students learn from labels for this many epochs first")  # fmt: skip
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--train-subset", type=int, default=S, help="train on this many images only")
    p.add_argument("--val-size", type=int, default=S)
    p.add_argument("--calib-size", type=int, default=S)
    p.add_argument("--num-sampled", type=int, default=S, help="M widths per step (default 2)")
    p.add_argument("--min-multiplier", type=float, default=S)
    p.add_argument("--round-to", type=int, default=S)
    p.add_argument("--tau", type=int, default=S, help="steps between proposal rounds")
    p.add_argument("--num-proposals", type=int, default=S, help="proposal budget")
    p.add_argument("--target", default=S, choices=("pareto", "uniform"))
    p.add_argument("--recal-batches", type=int, default=S)
    p.add_argument("--device", default=S, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=S)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=S)
    p.add_argument("--threads", type=int, default=S)
    p.add_argument("--checkpoint-every", type=int, default=S)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_train_config(args: argparse.Namespace):
    """Defaults < config file < flags; with --resume, the run's own config.json, which flags
    may not contradict."""
    from pareco.config import TrainConfig, read_config_file

    skip = {"config", "resume", "no_progress", "func", "command"}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    values = read_config_file(args.config) if args.config else {}
    values.update(flags)
    if args.resume:
        out = values.get("out", TrainConfig.out)
        saved_path = Path(out) / "config.json"
        if not saved_path.is_file():
            raise UserError(f"--resume: {out} holds no config.json; is it a pareco run directory?")
        saved = read_config_file(saved_path)
        clash = {k: (saved.get(k), v) for k, v in values.items() if k in saved and saved[k] != v}
        if clash:
            detail = ", ".join(f"{k}: run has {a!r}, asked {b!r}" for k, (a, b) in clash.items())
            raise UserError(
                f"--resume continues the run as it was configured ({detail}); drop those flags"
            )
        values = saved
    return TrainConfig.from_dict(values)


def cmd_train(args: argparse.Namespace) -> None:
    from pareco import distributed
    from pareco.train import RunError, Trainer

    config = resolve_train_config(args)
    trainer = Trainer(config, resume=args.resume, progress=not args.no_progress)
    if trainer.is_main:
        print(trainer.describe(), flush=True)
    try:
        trainer.fit()
    except RuntimeError as err:
        if not trainer.dist.enabled or isinstance(err, RunError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(
            f"rank {trainer.rank}: lost contact with the other processes ({first}); the last "
            f"checkpoint in {config.out} is intact: relaunch with --resume"
        ) from None
    finally:
        distributed.shutdown()


def cmd_search(args: argparse.Namespace) -> None:
    from pareco.twostage import run_search

    summary = run_search(args.rundir, candidates=args.candidates, device=args.device,
                         progress=not args.no_progress)  # fmt: skip
    print(f"{summary['candidates']} candidates scored in {summary['score_seconds']:.1f}s; "
          f"wrote {Path(args.rundir) / 'history.jsonl'}")  # fmt: skip


def cmd_front(args: argparse.Namespace) -> None:
    from pareco import front
    from pareco.train import resolve_device

    sweep = front.DEFAULT_SWEEP if args.cost_sweep is None else args.cost_sweep
    if sweep < 2:
        raise UserError(f"--cost-sweep needs at least 2 widths, got {sweep}")
    device = resolve_device(args.device)
    run = front.open_run(args.rundir, device)
    result = front.build_front(run, sweep=sweep, device=device, progress=not args.no_progress)
    front.write_front(args.rundir, result)
    print(front.format_front_table(result))
    print(f"wrote front.json, front.csv, front.png, widths.png in {args.rundir}")


def _float_arg(flag: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{flag} must be a number, got {text!r}") from None


def cmd_export(args: argparse.Namespace) -> None:
    from pareco import front
    from pareco.train import resolve_device

    budget = _float_arg("--budget", args.budget)
    result = front.export_for_budget(
        args.rundir, budget, args.cost, args.format, out=args.out,
        device=resolve_device(args.device), progress=not args.no_progress,
    )  # fmt: skip
    p, cost = result.point, front.check_cost(args.cost)
    checks = ", ".join(f"{k} {100 * c.accuracy:.2f}%" for k, c in result.checks.items())
    print(
        f"point {p['id']}: {cost} ratio {p[cost + '_ratio']:.4f} "
        f"(FLOPs {p['flops_ratio']:.3f}, memory {p['memory_ratio']:.3f}, "
        f"params {p['params_ratio']:.3f}); test accuracy {100 * p['test_accuracy']:.2f}% "
        f"(checked: {checks})\nwrote {', '.join(result.report['files'])}, report.md and "
        f"report.json in {result.path}"
    )


def cmd_compare(args: argparse.Namespace) -> None:
    from pareco import front
    from pareco.train import resolve_device

    result = front.compare_runs(
        args.rundirs, args.out, cost=args.cost, device=resolve_device(args.device),
        progress=not args.no_progress,
    )  # fmt: skip
    print(front.compare_markdown(result), end="")
    print(f"wrote compare.md, compare.json, compare.png in {args.out}")


def _front_commands(sub: argparse._SubParsersAction) -> None:
    """``front``, ``export`` and ``compare``: what happens after training."""
    p = sub.add_parser("front", help="Pareto front of a run (select on val, report on test)")
    p.add_argument("rundir")
    p.add_argument("--cost-sweep", type=int,
                   help="uniform widths evenly spaced in cost (Slim runs; default 16)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_front)

    p = sub.add_parser("export", help="export the front point that fits a cost budget")
    p.add_argument("rundir")
    p.add_argument("--budget", required=True, help="cost ratio to fit (0.5 = half the full cost)")
    p.add_argument("--cost", default="flops", help="flops, memory or params (default flops)")
    p.add_argument("--format", default="pt", help="pt, onnx or both (default pt)")
    p.add_argument("--out", help="directory to write (default RUNDIR/export/COST-BUDGET)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="compare the fronts of several runs")
    p.add_argument("rundirs", nargs="+")
    p.add_argument("--out", default="compare", help="directory to write (default ./compare)")
    p.add_argument("--cost", help="flops, memory or params (default: the first run's objective)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)


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

    p = sub.add_parser("train", help="train a slimmable network (slim, twostage or pareco)")
    _train_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("search", help="TwoStage's second stage: search a finished twostage run")
    p.add_argument("rundir")
    p.add_argument("--candidates", type=int, help="widths to propose (default: the run's budget)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_search)

    _front_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    USER_ERRORS = _user_errors()
    try:
        args.func(args)
    except USER_ERRORS as err:
        print(f"pareco {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pareco {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
