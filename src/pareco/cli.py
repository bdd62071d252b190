"""Command line: ``pareco models | train | search | front | export | compare | latency-table``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from pareco import models
from pareco.config import (
    METHODS,
    RESUME_MAY_CHANGE,
    SORT_SETTINGS,
    cost_names,
    data_names,
    resume_clash,
)
from pareco.errors import ParecoError, RunError, first_line


class UserError(ParecoError):
    """Bad input from the user: printed as one line, exit code 2."""


def _user_errors() -> tuple[type[Exception], ...]:
    """What ``main`` prints as one line (exit 2): every :class:`ParecoError` (``SlimError``,
    ``ConfigError``, ``RunError``, ...)."""
    return (ParecoError,)


def parse_size(text: str) -> tuple[int, int, int]:
    """``3x32x32`` → (3, 32, 32)."""
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(
            f"--input-size must look like 3x32x32 (channels x height x width), got {text!r}"
        ) from None
    return c, h, w


def human(n: float, unit: str = "") -> str:
    """``1234567`` → ``1.23M``; with ``unit="B"``, ``1.23 MB``."""
    sep = " " if unit else ""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{sep}{prefix}{unit}"
    return f"{n:.0f}{sep}{unit}"


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
        # the memory cost counts activation elements (batch 1); shown as float32 bytes
        peak_bytes = 4 * net.cost(full, "memory").item()
        rows.append((name, f"{c}x{h}x{w}", net.space.dim, human(net.cost(full, "macs").item()),
                     human(net.cost(full, "params").item()), human(peak_bytes, "B"),
                     entry.summary))  # fmt: skip
        if args.describe:
            print(net.space.describe(), end="\n\n")
    header = ("model", "input", "groups", "MACs", "params", "peak act. (fp32)", "description")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(wd) for v, wd in zip(r, widths)).rstrip())


#: Values a key takes, shown in --help (checked by TrainConfig with one clear line).
_CHOICES = {
    "data": data_names,
    "method": lambda: METHODS,
    "cost": cost_names,
    "schedule": lambda: ("linear", "cosine"),
    "target": lambda: ("pareto", "uniform"),
    "loss_bound": lambda: ("upper", "lower"),
    "high_loss": lambda: ("reference", "chance"),
    "sort_channels": lambda: SORT_SETTINGS,
    "teacher": lambda: ("inplace", "original"),
}


def _train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field, generated from the dataclass (a new field gets its flag
    for free), with its help line and default. Only flags given on the command line override the
    config file; values are converted and checked by ``TrainConfig`` so an error is one line."""
    import dataclasses
    import typing

    from pareco.config import HELP, TrainConfig

    S = argparse.SUPPRESS
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of the keys below")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint; only "
                        f"{', '.join('--' + k.replace('_', '-') for k in RESUME_MAY_CHANGE)} "
                        "may change")  # fmt: skip
    restart = "start again in --out; its old run moves into --out/replaced-N/"
    p.add_argument("--restart", action="store_true", help=restart)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = HELP.get(f.name, f.name.replace("_", " "))
        if default is not None and not isinstance(default, dict):
            shown = " ".join(map(str, default)) if isinstance(default, list) else default
            text += f" (default: {shown})"
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        if hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=S, help=text)
        elif origin is dict:
            p.add_argument(flag, nargs="+", metavar="KEY=VALUE", default=S, help=text)
        elif origin is list:
            p.add_argument(flag, nargs="+", metavar="X", default=S, help=text)
        elif f.name in _CHOICES:
            choices = _CHOICES[f.name]()
            p.add_argument(flag, metavar="{" + ",".join(choices) + "}", default=S, help=text)
        else:
            kind = typing.get_args(hint) or (hint,)
            named = {"out": "DIR", "data_dir": "DIR", "model": "MODEL", "init_weights": "FILE"}
            metavar = named.get(f.name) or (
                "N" if int in kind else "X" if float in kind else "TEXT"
            )
            p.add_argument(flag, metavar=metavar, default=S, help=text)


def _key_values(key: str, items: list[str]) -> dict:
    """``["width=8", "noise=0.1"]`` → ``{"width": 8, "noise": 0.1}`` (values read as YAML)."""
    import yaml

    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UserError(f"--{key.replace('_', '-')} takes KEY=VALUE pairs, got {item!r}")
        try:
            out[name.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[name.strip()] = text
    return out


def resolve_train_config(args: argparse.Namespace):
    """Defaults < config file < flags; with --resume, the run's own config.json, which flags may
    not contradict except for ``RESUME_MAY_CHANGE`` (``out`` is always the folder resumed, so a
    run directory can be moved or copied and still resumed)."""
    import dataclasses
    import typing

    from pareco.config import (
        ConfigError,
        TrainConfig,
        coerce,
        read_config_file,
        refuse_unknown_keys,
    )

    if getattr(args, "resume", False) and getattr(args, "restart", False):
        raise UserError("--resume and --restart exclude each other: choose one")
    skip = {"config", "resume", "restart", "no_progress", "func", "command"}
    hints = typing.get_type_hints(TrainConfig)
    flags = {}
    for k, v in vars(args).items():
        if k in skip:
            continue
        if typing.get_origin(hints.get(k)) is dict and isinstance(v, list):
            v = _key_values(k, v)
        flags[k] = v
    values = read_config_file(args.config) if args.config else {}
    values.update(flags)
    if not getattr(args, "resume", False):
        return TrainConfig.from_dict(values)
    out = str(values.get("out", TrainConfig.out))
    saved_path = Path(out) / "config.json"
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file, not a run directory")
    if not saved_path.is_file():
        raise UserError(f"--resume: {out} holds no config.json; is it a pareco run directory?")
    saved = read_config_file(saved_path)
    refuse_unknown_keys(values, [f.name for f in dataclasses.fields(TrainConfig)])
    asked = {k: coerce(k, v, hints[k]) for k, v in values.items()}
    clash = resume_clash(saved, asked)
    if clash:
        raise UserError(
            f"--resume continues the run as it was configured ({clash}); drop those flags"
        )
    merged = {**saved, **{k: v for k, v in asked.items() if k in RESUME_MAY_CHANGE}}
    merged["out"] = out
    try:
        return TrainConfig.from_dict(merged)
    except ConfigError as err:
        raise ConfigError(f"{saved_path}: {err}") from None


def cmd_train(args: argparse.Namespace) -> None:
    from pareco import distributed
    from pareco.trainer import Trainer

    config = resolve_train_config(args)
    trainer = Trainer(
        config, resume=args.resume, restart=args.restart, progress=not args.no_progress
    )
    if trainer.is_main:
        print(trainer.describe(), flush=True)
    ended_well = False
    try:
        trainer.fit()
        ended_well = True
    except RuntimeError as err:
        if not trainer.dist.enabled or isinstance(err, ParecoError):
            raise
        raise RunError(
            f"rank {trainer.rank}: lost contact with the other processes ({first_line(err)}); "
            f"the last checkpoint in {config.out} is intact: relaunch with --resume"
        ) from None
    finally:
        trainer.close()
        distributed.shutdown(wait_for_peers=ended_well)


def _device(name: str):
    """``--device`` of the commands after training: a clear line for a name torch cannot use."""
    from pareco.config import check_device_name
    from pareco.trainer import resolve_device

    check_device_name(name)
    return resolve_device(name)


def cmd_search(args: argparse.Namespace) -> None:
    from pareco.twostage import run_search

    _device(args.device)

    summary = run_search(args.rundir, candidates=args.candidates, device=args.device,
                         progress=not args.no_progress)  # fmt: skip
    took = "" if summary["seconds"] is None else f" in {summary['seconds']:.1f}s"
    print(f"{summary['candidates']} candidates{took} ({summary['score_seconds']:.1f}s scoring); "
          f"wrote {Path(args.rundir) / 'history.jsonl'}")  # fmt: skip


def cmd_front(args: argparse.Namespace) -> None:
    from pareco import front
    from pareco.plugins import load_run_plugins
    from pareco.report import format_front_table

    sweep = front.DEFAULT_SWEEP if args.cost_sweep is None else args.cost_sweep
    if sweep < 2:
        raise UserError(f"--cost-sweep needs at least 2 widths, got {sweep}")
    device = _device(args.device)
    if args.cost is not None:
        load_run_plugins(args.rundir)
        front.check_cost(args.cost)  # a typo is refused before the candidates are evaluated
    if args.proposals not in front.PROPOSALS:
        raise UserError(
            f"--proposals must be {' or '.join(front.PROPOSALS)}, got {args.proposals!r}"
        )
    run = front.open_run(args.rundir, device)
    result = front.build_front(run, sweep=sweep, device=device, progress=not args.no_progress,
                               proposals=args.proposals)  # fmt: skip
    front.write_front(args.rundir, result)
    cost = None if args.cost is None else front.check_cost(args.cost, result)
    print(format_front_table(result, cost))
    if result.get("report_note"):
        print(f"note: {result['report_note']}")
    print(f"wrote front.json, front.csv, front.png, widths.png in {args.rundir}")


def _float_arg(flag: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{flag} must be a number, got {text!r}") from None


def cmd_export(args: argparse.Namespace) -> None:
    from pareco.budget import check_budget, export_for_budget
    from pareco.front import check_cost

    if (args.budget is None) == (args.budget_ms is None):
        raise UserError(
            "give one budget: --budget RATIO (0.5 = half the full cost) or --budget-ms MS "
            "(predicted latency, for runs with a latency table)"
        )
    budget_ms = None
    if args.budget_ms is not None:
        budget_ms = _float_arg("--budget-ms", args.budget_ms)
        if not (budget_ms > 0 and budget_ms < float("inf")):
            raise UserError(
                f"--budget-ms must be a positive number of milliseconds, got {args.budget_ms}"
            )
        budget, args.cost = 1.0, "latency"
    else:
        budget = _float_arg("--budget", args.budget)
    if budget_ms is None:
        check_budget(budget)  # one line, before the run is opened
    device = _device(args.device)
    if budget_ms is not None and args.out is None:
        args.out = str(Path(args.rundir) / "export" / f"latency-{budget_ms:g}ms")
    try:
        result = export_for_budget(
            args.rundir, budget, args.cost, args.format, out=args.out,
            device=device, progress=not args.no_progress, budget_ms=budget_ms,
        )  # fmt: skip
    except OSError as err:  # a read-only or impossible --out: say where, not a staging file
        where = args.out or f"{args.rundir}/export"
        raise UserError(
            f"cannot write the export to {where} ({err.strerror or err}): choose a writable --out"
        ) from None
    p, cost = result.point, check_cost(args.cost)
    checks = ", ".join(f"{k} {100 * c.accuracy:.2f}%" for k, c in result.checks.items())
    print(
        f"point {p['id']}: {cost} ratio {p[cost + '_ratio']:.4f} "
        f"(FLOPs {p['flops_ratio']:.3f}, memory {p['memory_ratio']:.3f}, "
        f"params {p['params_ratio']:.3f}); test accuracy {100 * p['test_accuracy']:.2f}% "
        f"(checked: {checks})\nwrote {', '.join(result.report['files'])}, report.md and "
        f"report.json in {result.path}"
    )
    lat = result.report.get("latency")
    if lat:
        rt = lat["runtime"]
        fits = (
            ""
            if lat["within_budget"] is None
            else (", within the budget" if lat["within_budget"] else ", OVER the budget")
        )
        print(
            f"latency on {rt['name']} ({rt.get('threads')} thread(s), {rt.get('clock')} clock): "
            f"predicted {lat['predicted_ms']:.3f} ms, measured {lat['measured_ms']:.3f} ms "
            f"({100 * lat['relative_error']:+.1f}%){fits}"
        )


def compare_out(args: argparse.Namespace) -> Path:
    """``--out`` of ``compare``; by default ``FIRST_RUNDIR/compare``, never the working
    directory (where a second comparison would silently replace the first)."""
    return Path(args.out) if args.out is not None else Path(args.rundirs[0]) / "compare"


def cmd_compare(args: argparse.Namespace) -> None:
    from pareco.compare import compare_runs
    from pareco.report import compare_markdown

    device = _device(args.device)
    out = compare_out(args)
    result = compare_runs(
        args.rundirs, out, cost=args.cost, device=device, progress=not args.no_progress
    )
    print(compare_markdown(result), end="")
    print(f"wrote compare.md, compare.json, compare.png in {out}")


def _front_commands(sub: argparse._SubParsersAction) -> None:
    """``front``, ``export`` and ``compare``: what happens after training."""
    p = sub.add_parser("front", help="Pareto front of a run (select on val, report on test)")
    p.add_argument("rundir")
    p.add_argument("--cost-sweep", type=int,
                   help="uniform widths evenly spaced in cost (Slim runs; default 16)")  # fmt: skip
    p.add_argument("--proposals", default="non-dominated",
                   help="PareCO/TwoStage runs: which search proposals are evaluated on validation: "
                   "non-dominated in (cost, search loss), the paper's rule (default), or all "
                   "(slower; keeps wide networks when the search loss stops falling with "
                   "width)")  # fmt: skip
    p.add_argument("--cost", help=f"the front to print: {_front_costs()} (default: the run's "
                   "objective; front.json holds them all)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_front)

    p = sub.add_parser("export", help="export the front point that fits a cost budget")
    p.add_argument("rundir")
    p.add_argument("--budget", help="cost ratio to fit (0.5 = half the full cost)")
    p.add_argument("--budget-ms", help="predicted latency to fit, in ms (runs with a latency "
                   "table); the export is then measured on the table's runtime")  # fmt: skip
    p.add_argument("--cost", default="flops", help=f"{_front_costs()} (default flops)")
    p.add_argument("--format", default="pt", help="pt, onnx or both (default pt)")
    p.add_argument("--out", help="directory to write (default RUNDIR/export/COST-BUDGET)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="compare the fronts of several runs")
    p.add_argument("rundirs", nargs="+")
    p.add_argument("--out", help="directory to write (default: FIRST_RUNDIR/compare)")
    p.add_argument("--cost", help=f"{_front_costs()} (default: the first run's objective)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)


def _front_costs() -> str:
    from pareco.cost_metrics import names

    costs = names("front")
    return ", ".join(costs[:-1]) + f" or {costs[-1]}"


def cmd_latency_table(args: argparse.Namespace) -> None:
    from types import SimpleNamespace

    from pareco.build import build_data, build_net
    from pareco.config import TrainConfig, read_config_file
    from pareco.latency import build_table, make_runtime

    values = read_config_file(args.config) if args.config else {}
    for key in ("model", "round_to", "min_multiplier"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.model_kwargs:
        values["model_kwargs"] = _key_values("model_kwargs", args.model_kwargs)
    if "model" not in values:
        raise UserError(
            "say which model: --model NAME (or package.module:factory) or --config FILE"
        )
    values.pop("latency_table", None)
    values["cost"] = "flops"  # the table is what cost: latency will need, not needed here
    config = TrainConfig.from_dict(values)
    if args.input_size:
        data = SimpleNamespace(input_shape=parse_size(args.input_size),
                               num_classes=args.num_classes or 10)  # fmt: skip
    elif args.config:
        data = build_data(config)  # the input size and classes a run of this config has
    else:
        name = config.model
        size = models.entry(name).input_size if name in models.names() else None
        if size is None:
            raise UserError("--input-size CxHxW is needed for a model outside the zoo")
        data = SimpleNamespace(input_shape=(3, *size), num_classes=args.num_classes or 10)
    net = build_net(config, data)
    try:
        runtime = make_runtime(
            args.runtime, device=args.device, threads=args.threads, warmup=args.warmup,
            repeats=args.repeats, clock=args.clock,
        )  # fmt: skip
    except ValueError as err:
        raise UserError(str(err)) from None
    except ImportError as err:
        raise UserError(
            f"the {args.runtime} runtime needs {err.name}: pip install 'pareco[onnx]'"
        ) from None
    table = build_table(
        net, runtime, model=config.model, max_points=args.max_points, samples=args.samples,
        probe_steps=not args.no_round_to_probe, seed=args.seed, progress=print,
    )  # fmt: skip
    table.save(args.out)
    from pareco.latency import bind

    model = bind(table, net)
    space = net.space
    full = float(model.predict_alpha(space.largest()))
    small = float(model.predict_alpha(space.smallest()))
    fit = ", ".join(f"{s['measured_ms']:.3f}" for s in table.samples)
    print(f"{len(table.layers)} layer calls of {len(table.kinds)} kinds measured on "
          f"{table.runtime['name']} ({table.runtime['device']}, {table.runtime['threads']} "
          f"thread(s), {table.runtime['clock']} clock)")  # fmt: skip
    print(f"end-to-end correction: measured = {table.slope:.4f} x table sum + "
          f"{table.intercept:.4f} ms, fitted on {len(table.samples)} sub-networks "
          f"({fit} ms)")  # fmt: skip
    print(f"predicted latency: full network {full:.3f} ms, smallest {small:.3f} ms")
    step = table.steps.get("suggested")
    if step:
        print(f"the table shows steps at multiples of {step}: consider round_to: {step}")
    for note in table.notes:
        print(f"note: {note}")
    print(f"wrote {args.out} (fingerprint {table.fingerprint}); train with cost: latency, "
          f"latency_table: {args.out}")  # fmt: skip


def _latency_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency-table", help="measure a per-layer latency table on this device")
    p.add_argument(
        "--config", metavar="FILE", help="a training config: its model, widths and input"
    )
    p.add_argument("--model", help="a zoo name or package.module:factory")
    p.add_argument("--model-kwargs", nargs="+", metavar="KEY=VALUE", help="model factory arguments")
    p.add_argument("--input-size", help="CxHxW (default: the config's data, or the zoo's size)")
    p.add_argument("--num-classes", type=int, help="classes of the model's head (default 10)")
    p.add_argument("--round-to", type=int, help="as in training (default 1)")
    p.add_argument("--min-multiplier", type=float, help="as in training (default 0.42)")
    p.add_argument("--runtime", default="torch", help="torch or onnxruntime (default torch)")
    p.add_argument("--device", default="cpu", help="torch runtime: cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--clock", default="wall", help="wall, or cpu: one thread's CPU time "
                   "(leaves out other processes on a shared machine)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per shape (default 5)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls, median (default 30)")
    p.add_argument(
        "--max-points", type=int, default=6, help="grid points per size axis (default 6)"
    )
    p.add_argument("--samples", type=int, default=8,
                   help="whole sub-networks timed for the end-to-end correction "
                        "(default 8)")  # fmt: skip
    p.add_argument("--no-round-to-probe", action="store_true",
                   help="skip timing every output size of the costliest layer")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the table's JSON file")
    p.set_defaults(func=cmd_latency_table)


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
    _latency_command(sub)
    # no prefixes: `pareco front RUN --cost-s 8` is not taken as some other flag by accident
    for command in [parser, *sub.choices.values()]:
        command.allow_abbrev = False
    return parser


def _one_process_unless_training(command: str) -> None:
    """Only ``pareco train`` shares its work among torchrun's processes; any other command would
    run whole on every rank and write the same files from each."""
    from pareco.distributed import launched_by_torchrun

    if command != "train" and launched_by_torchrun():
        raise UserError(
            f"pareco {command} runs in one process: run it without torchrun (only pareco train "
            "uses several)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    from pareco import plugins

    try:  # before the parser: a plugin's metrics and datasets appear in --help
        plugins.load_environment()
    except plugins.PluginError as err:
        print(f"pareco: error: {err}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    USER_ERRORS = _user_errors()
    from pareco.rundir import Interrupted

    try:
        _one_process_unless_training(args.command)
        args.func(args)
    except Interrupted as err:
        print(f"pareco {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except USER_ERRORS as err:
        print(f"pareco {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path that cannot be read or written: one line, not a traceback
        where = f" {err.filename}" if err.filename else ""
        print(
            f"pareco {args.command}: error: cannot use{where}: {err.strerror or err}; check the "
            "path and its permissions, or choose another --out",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"pareco {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
