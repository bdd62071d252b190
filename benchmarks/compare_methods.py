"""The method comparison: a paired-seed experiment of Slim, TwoStage and PareCO on Fashion-MNIST.

Every run shares the model, data, epochs and trainer (configs/compare_fmnist.yaml). Per seed:

* Slim: one training (uniform widths do not depend on the cost objective); its front is a sweep
  of uniform widths;
* TwoStage: one stage-one training, then `pareco search` once per cost objective on the frozen
  weights (the stage-two budget of `pareco.samplers.default_search_candidates`);
* PareCO: one training per cost objective.

Per seed and cost objective, besides each method's own front, two **cross-evaluations** tell
"better weights" from "better widths": PareCO's front widths evaluated on Slim's weights, and a
uniform sweep evaluated on PareCO's weights (BN recalibrated, selected on validation, reported on
test, like every front). Each seed's results go to a small summary, docs/results/compare/s<seed>.json;
the report (`report`) reads only those summaries, so the experiment resumes across interruptions
and sessions: every training resumes from its checkpoint, every finished step is skipped.

    python benchmarks/compare_methods.py run --seeds 0 1 2 3 4 --jobs 2   # trainings, searches, fronts
    python benchmarks/compare_methods.py report                         # docs/results.md

The same experiment in the paper's regime (issue #20; 30 epochs on all 60k images, several
sessions on this machine; `benchmarks/compare_on_gpu.sh` runs it on one GPU):

    python benchmarks/compare_methods.py run --config configs/compare_fmnist_paper.yaml \
        --root runs/paper --summaries docs/results/compare_paper --seeds 0 1 2 --jobs 1
    python benchmarks/compare_methods.py report --config configs/compare_fmnist_paper.yaml \
        --summaries docs/results/compare_paper --page docs/results_paper.md --planned 3 \
        --title "Method comparison in the paper's regime (Fashion-MNIST, 30 epochs)"

`run` keeps `--jobs` processes busy at one thread each (two runs side by side on a 2-core machine).

An experiment longer than a session survives the machine: `run` copies every unfinished seed's run
directories (checkpoint, config, metrics, finished fronts; no TensorBoard files) into
`<summaries>/in_progress/` whenever a job ends and every `--snapshot-every` minutes, and on a machine
that lacks a run directory it starts from that copy (never over a run that is there). Commit the
folder as it grows; `snapshot` does the same by hand, and a seed's copies are deleted once its
summary is written. With `--commit`, `run` commits the summaries folder itself after each snapshot
(its paths only: other staged work stays staged), so a session that is cut off keeps its last one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COSTS = ("flops", "memory")
SUMMARIES = ROOT / "docs" / "results" / "compare"


@dataclass
class Job:
    """One step of the experiment: a command, what it waits for, and the file that says it is done."""

    name: str
    command: list[str]
    done: Path
    needs: list[str] = field(default_factory=list)


def pareco(*args: str) -> list[str]:
    return [sys.executable, "-m", "pareco", *args]


def train_job(
    root: Path, config: str, method: str, cost: str, seed: int, device: str | None = None
) -> Job:
    out = root / (f"{method}-s{seed}" if method != "pareco" else f"pareco-{cost}-s{seed}")
    if (out / "checkpoint.pt").exists():
        command = pareco("train", "--resume", "--out", str(out), "--no-progress")
    else:
        command = pareco("train", "--config", config, "--method", method, "--cost", cost,
                         "--seed", str(seed), "--out", str(out), "--no-progress")  # fmt: skip
    if device:
        command += ["--device", device]
    return Job(f"train {out.name}", command, out / "eval.json")


def search_job(root: Path, seed: int, cost: str, device: str | None = None) -> Job:
    """TwoStage's stage two for one cost objective, in a copy of stage one's run directory."""
    out = root / f"twostage-{cost}-s{seed}"
    script = [sys.executable, str(Path(__file__).resolve()), "stage-two",
              str(root / f"twostage-s{seed}"), str(out), cost]  # fmt: skip
    if device:
        script += ["--device", device]
    return Job(f"search {out.name}", script, out / "search.json", [f"train twostage-s{seed}"])


def plan(
    root: Path,
    config: str,
    seeds: list[int],
    summaries: Path = SUMMARIES,
    device: str | None = None,
) -> list[Job]:
    jobs: list[Job] = []
    for seed in seeds:
        if (summaries / f"s{seed}.json").exists():
            continue  # summarized: its runs are no longer needed (they may be on another machine)
        trains = [train_job(root, config, "slim", "flops", seed, device),
                  train_job(root, config, "twostage", "flops", seed, device)]  # fmt: skip
        trains += [train_job(root, config, "pareco", cost, seed, device) for cost in COSTS]
        searches = [search_job(root, seed, cost, device) for cost in COSTS]
        script = [sys.executable, str(Path(__file__).resolve())]
        evaluate = Job(
            f"evaluate s{seed}",
            [
                *script,
                "evaluate",
                "--root",
                str(root),
                "--seed",
                str(seed),
                "--summaries",
                str(summaries),
                *(["--device", device] if device else []),
            ],
            summaries / f"s{seed}.json",
            [j.name for j in trains + searches],
        )
        jobs += [*trains, *searches, evaluate]
    return jobs


#: Files of a run directory that a snapshot leaves out: the lock of the live process, the previous
#: checkpoint (the current one is enough to resume), TensorBoard event files, figures.
SNAPSHOT_SKIP = (".lock", "checkpoint.prev.pt")


def _seed_of(name: str) -> int | None:
    tail = name.rsplit("-s", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def snapshot(root: Path, into: Path, summaries: Path) -> list[str]:
    """Copy the run directories of every seed without a summary from ``root`` into ``into``.

    Only top-level files are copied (``SNAPSHOT_SKIP`` and figures left out), each written to a
    temporary name and renamed, the checkpoint first, so a copy taken while a run trains always
    holds a whole checkpoint. Copies of summarized seeds are deleted. Returns the runs copied.
    """
    import shutil

    copied = []
    if into.is_dir():
        for old in sorted(into.iterdir()):
            seed = _seed_of(old.name)
            if seed is not None and (summaries / f"s{seed}.json").exists():
                shutil.rmtree(old)
    if not root.is_dir():
        return copied
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        seed = _seed_of(run_dir.name)
        if seed is None or (summaries / f"s{seed}.json").exists():
            continue
        files = [f for f in run_dir.iterdir() if f.is_file() and f.name not in SNAPSHOT_SKIP
                 and f.suffix != ".png" and not f.name.endswith(".tmp")]  # fmt: skip
        if not any(f.name == "checkpoint.pt" for f in files):
            continue  # nothing to resume from yet
        files.sort(key=lambda f: f.name != "checkpoint.pt")
        target = into / run_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            tmp = target / (f.name + ".tmp")
            shutil.copy2(f, tmp)
            tmp.replace(target / f.name)
        copied.append(run_dir.name)
    return copied


def restore(root: Path, into: Path) -> list[str]:
    """Copy each snapshot in ``into`` to ``root`` where ``root`` has no checkpoint of that run.

    A run directory that has a checkpoint is never touched: it is at least as far along as any
    snapshot taken of it. Returns the runs restored.
    """
    import shutil

    restored = []
    if not into.is_dir():
        return restored
    for snap in sorted(p for p in into.iterdir() if (p / "checkpoint.pt").is_file()):
        target = root / snap.name
        if (target / "checkpoint.pt").exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for f in snap.iterdir():
            if f.is_file() and not f.name.endswith(".tmp"):
                shutil.copy2(f, target / f.name)
        restored.append(snap.name)
    return restored


#: Settings a job sets for itself, so a run directory may differ from the configuration in them.
PER_JOB = ("seed", "method", "cost", "out", "device", "threads")
#: The file in ``--root`` that names the summaries folder its runs belong to.
STAMP = "experiment.json"


def check_root(root: Path, config: str | Path, summaries: Path) -> None:
    """Refuse a ``--root`` that holds another experiment's runs (one clear line, nothing touched).

    Every run directory's ``config.json`` must agree with ``config`` on each setting the file
    names (the per-job ones aside), and the root must not be stamped for other summaries: a run of
    the 3-epoch comparison left in the root would otherwise be taken as this experiment's, done.
    """
    from pareco.config import read_config_file

    check_stamp(root, summaries)
    wanted = {k: v for k, v in read_config_file(config).items() if k not in PER_JOB}
    for path in sorted(root.glob("*/config.json")):
        have = json.loads(path.read_text())
        differ = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
        if differ:
            key, (theirs, ours) = next(iter(differ.items()))
            raise SystemExit(
                f"compare_methods: {path.parent} was trained with {key}={theirs!r}, not {ours!r} as "
                f"in {config}: it belongs to another experiment; pass another --root"
            )


def check_stamp(root: Path, summaries: Path) -> None:
    """Refuse a ``--root`` stamped as holding the runs of another summaries folder."""
    stamp = root / STAMP
    theirs = json.loads(stamp.read_text()).get("summaries") if stamp.is_file() else None
    if theirs and _in_repo(Path(theirs)) != _in_repo(summaries):
        raise SystemExit(
            f"compare_methods: {root} holds the runs of the experiment summarized in {theirs}, "
            f"not {summaries}: pass the --root and --summaries of one experiment"
        )


def stamp_root(root: Path, summaries: Path) -> None:
    """Write which summaries folder ``root``'s runs belong to (read by `check_root`)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / STAMP).write_text(json.dumps({"summaries": _in_repo(summaries)}) + "\n")


def _in_repo(path: Path) -> str:
    """``path`` relative to the checkout that holds it, else absolute: the same summaries folder is
    named alike from any clone or worktree, and from inside or outside it.

    A relative ``theirs`` read back from a stamp is already in this form and is returned as is.
    """
    if not path.is_absolute() and not path.exists():
        return str(path)
    top = _checkout_of(path)
    return str(path.resolve().relative_to(top)) if top else str(path.resolve())


def _checkout_of(path: Path) -> Path | None:
    """The git checkout (clone or worktree) that holds ``path``, or None."""
    return next((top for top in path.resolve().parents if (top / ".git").exists()), None)


def commit_summaries(summaries: Path, message: str) -> str:
    """Commit the summaries folder, and nothing else, in the checkout that holds it.

    Stages the folder's additions, changes and deletions, then commits only its paths (other
    staged work is left staged). Returns one line for the log; a failure (no checkout, the index
    locked by another git command) is reported, never raised: the next snapshot tries again.
    """
    top = _checkout_of(summaries)
    if top is None:
        return f"{summaries} is not in a git checkout: not committed"
    rel = str(summaries.resolve().relative_to(top))

    def git(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(top), *argv], capture_output=True, text=True)

    def failed(done: subprocess.CompletedProcess) -> str:
        return f"not committed: {(done.stderr.strip().splitlines() or ['git failed'])[0]}"

    done = git("add", "-A", "--", rel)
    if done.returncode:
        return failed(done)
    staged = git("diff", "--cached", "--name-status", "--", rel)
    if staged.returncode:
        return failed(staged)
    if not staged.stdout.strip():
        return "nothing new to commit"
    new = re.compile(r"A\t" + re.escape(rel) + r"/(s\d+\.json)")
    summaries_added = [m[1] for m in map(new.fullmatch, staged.stdout.splitlines()) if m]
    if summaries_added:
        message += f"; new summaries: {', '.join(summaries_added)}"
    done = git("commit", "-q", "-m", message, "--", rel)
    return failed(done) if done.returncode else f"committed {rel} in {top}"


def status_rows(snapshots: Path, summaries: Path, seeds: list[int]) -> list[dict]:
    """Where each planned run stands, read from the snapshots and the summaries alone: summarized
    (its seed has a summary), trained (eval.json), step k of n (a checkpoint), or not started."""
    import torch

    from pareco.checkpoint import load_checkpoint

    rows = []
    names = ["slim", "twostage", *(f"pareco-{c}" for c in COSTS), *(f"twostage-{c}" for c in COSTS)]
    for seed in seeds:
        for name in names:
            row = {"run": f"{name}-s{seed}", "seed": seed}
            snap = snapshots / row["run"]
            if (summaries / f"s{seed}.json").exists():
                row["state"] = "summarized"
            elif (snap / "search.json").exists():
                seconds = json.loads((snap / "search.json").read_text())["seconds"]
                row.update(state="searched", hours=seconds / 3600)
            elif name.startswith("twostage-"):
                stage_one = next(r for r in rows if r["run"] == f"twostage-s{seed}")
                trained = stage_one["state"] == "trained"
                row["state"] = "not started" if trained else "waits for stage one"
                if (snap / "checkpoint.pt").exists():
                    row["state"] = "searching"
                    if (snap / "search_state.pt").exists():  # candidates scored so far
                        saved = torch.load(snap / "search_state.pt", weights_only=False)
                        done = len(saved["search"]["history"]["steps"])
                        row["state"] = f"searching ({done} of {saved['key']['budget']} candidates)"
            elif (snap / "checkpoint.pt").exists():
                state = load_checkpoint(snap, map_location="cpu", repair=False)
                loader, config = state["loader"], state["config"]
                total = config["epochs"] * (loader["num_samples"] // loader["batch_size"])
                row.update(step=state["step"], steps=total, hours=state["train_seconds"] / 3600)
                row["state"] = "trained" if state["finished"] else "training"
                if (snap / "eval.json").exists():
                    ev = json.loads((snap / "eval.json").read_text())
                    row["accuracy"] = {str(r["width"]): r["test_accuracy"] for r in ev["uniform"]}
            else:
                row["state"] = "not started"
            rows.append(row)
    return rows


def _where(row: dict) -> str:
    """One run's state in a few words: ``slim-s1 at step 9,416 of 12,840``, ``... searched``."""
    if row.get("step") is not None and row["state"] == "training":
        return f"{row['run']} at step {row['step']:,} of {row['steps']:,}"
    return f"{row['run']} {row['state']}"


def status_table(rows: list[dict]) -> str:
    widths = sorted({w for r in rows for w in r.get("accuracy", {})}, key=float)
    lines = [
        "| run | state | step | train (h) |" + "".join(f" acc @ {w} (%) |" for w in widths),
        "|---|---|---|---|" + "---|" * len(widths),
    ]
    for r in rows:
        step = f"{r['step']:,} of {r['steps']:,}" if "step" in r else ""
        hours = f"{r['hours']:.2f}" if "hours" in r else ""
        acc = r.get("accuracy", {})
        cells = "".join(f" {100 * acc[w]:.2f} |" if w in acc else " |" for w in widths)
        lines.append(f"| {r['run']} | {r['state']} | {step} | {hours} |{cells}")
    return "\n".join(lines)


def status(args: argparse.Namespace) -> None:
    """Print the status table; with --page, put it between the page's status markers."""
    rows = status_rows(args.summaries / "in_progress", args.summaries, args.seeds)
    table = status_table(rows)
    print(table)
    if args.page:
        text = args.page.read_text()
        start, end = "<!-- status table", "<!-- end status table -->"
        head, rest = text.split(start, 1)
        marker, _ = rest.split("\n", 1)
        tail = rest.split(end, 1)[1]
        args.page.write_text(f"{head}{start}{marker}\n{table}\n{end}{tail}")


def run(args: argparse.Namespace) -> None:
    root: Path = args.root
    check_root(root, args.config, args.summaries)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    failed: set[str] = set()
    retry_after: dict[str, float] = {}
    start = time.perf_counter()

    def analysis_mtime() -> float:
        path = ROOT / "benchmarks" / "compare_analysis.py"
        return path.stat().st_mtime if path.exists() else 0.0

    def log(text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        with open(root / "scheduler.log", "a") as f:
            f.write(line + "\n")

    stamp_root(root, args.summaries)
    snapshots: Path = args.summaries / "in_progress"
    for name in restore(root, snapshots):
        log(f"restored {name} from {snapshots}")
    last_snapshot = time.perf_counter()

    def take_snapshot() -> None:
        nonlocal last_snapshot
        copied = snapshot(root, snapshots, args.summaries)
        last_snapshot = time.perf_counter()
        if copied:
            log(f"snapshot of {len(copied)} runs in {snapshots}")
        if getattr(args, "commit", False):
            rows = {r["run"]: r for r in status_rows(snapshots, args.summaries, args.seeds)}
            runs = ", ".join(_where(rows[n]) if n in rows else n for n in copied)
            message = f"Experiment snapshot (compare_methods run --commit): {runs or 'no runs'}"
            log(commit_summaries(args.summaries, message))

    while True:
        if time.perf_counter() - last_snapshot > 60 * args.snapshot_every:
            take_snapshot()
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                if proc.returncode != 0:
                    failed.add(name)
                    retry_after[name] = analysis_mtime()
                log(f"{name}: {status} in {time.perf_counter() - t0:.0f}s")
                take_snapshot()
        # A failed evaluation is tried again once the analysis code has changed.
        for name in [n for n in failed if n.startswith("evaluate")]:
            if analysis_mtime() != retry_after.get(name):
                failed.discard(name)
        jobs = plan(root, args.config, args.seeds, args.summaries, args.device)
        done = {j.name for j in jobs if j.done.exists()}
        pending = [j for j in jobs if j.name not in done and j.name not in failed]
        if not pending and not running:
            break
        for job in pending:
            if len(running) >= args.jobs:
                break
            if job.name in running or not all(n in done for n in job.needs):
                continue
            if any(n in failed for n in job.needs):
                failed.add(job.name)
                continue
            with open(root / "logs" / (job.name.replace(" ", "_") + ".log"), "a") as out:
                proc = subprocess.Popen(job.command, stdout=out, stderr=subprocess.STDOUT,
                                        env=env, cwd=ROOT)  # fmt: skip
            running[job.name] = (proc, time.perf_counter())
            log(f"{job.name}: started")
        if not running and pending and not any(n.startswith("evaluate") for n in failed):
            blocked = [j.name for j in pending]
            log(f"nothing can start; blocked by failures: {blocked}")
            break
        time.sleep(5)
    log(f"finished in {(time.perf_counter() - start) / 60:.1f} min; failed: {sorted(failed)}")


def snapshot_command(args: argparse.Namespace) -> None:
    check_stamp(args.root, args.summaries)
    copied = snapshot(args.root, args.summaries / "in_progress", args.summaries)
    print("copied:", *copied or ["nothing"])


def stage_two(args: argparse.Namespace) -> None:
    """Copy stage one's run directory for one cost objective and run `pareco search` in it."""
    import shutil

    source, out = Path(args.source), Path(args.out)
    if not (out / "checkpoint.pt").exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "checkpoint.pt", out / "checkpoint.pt")
        shutil.copy2(source / "eval.json", out / "eval.json")
        config = json.loads((source / "config.json").read_text())
        config.update(cost=args.cost, out=str(out))
        (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    from pareco.twostage import run_search

    start = time.perf_counter()
    result = run_search(out, device=args.device or "cpu", progress=False)
    print(json.dumps(result))
    # A search continued from a state saved before pareco summed its time across processes
    # knows only this process's part: kept, and marked as a lower bound.
    partial = result["seconds"] is None
    seconds = time.perf_counter() - start if partial else result["seconds"]
    (out / "search.json").write_text(
        json.dumps({**result, "seconds": seconds, "partial": partial}) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="trainings, TwoStage searches, fronts and per-seed summaries")
    p.add_argument("--config", default="configs/compare_fmnist.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--jobs", type=int, default=2, help="processes at once, one thread each")
    p.add_argument("--root", type=Path, default=Path("runs/compare"))
    p.add_argument("--summaries", type=Path, default=SUMMARIES, help="per-seed summaries")
    p.add_argument("--device", default=None, help="device of every job (default: the config's)")
    p.add_argument("--snapshot-every", type=float, default=30.0,
                   help="minutes between copies of the unfinished runs into SUMMARIES/in_progress")  # fmt: skip
    p.add_argument("--commit", action="store_true",
                   help="git-commit the summaries folder (and nothing else) after every snapshot, so "
                        "a session cut off keeps its last snapshot")  # fmt: skip
    p.set_defaults(func=run)
    p = sub.add_parser(
        "snapshot", help="copy the unfinished seeds' runs into SUMMARIES/in_progress"
    )
    p.add_argument("--root", type=Path, default=Path("runs/compare"))
    p.add_argument("--summaries", type=Path, default=SUMMARIES)
    p.set_defaults(func=snapshot_command)
    p = sub.add_parser("status", help="where each run stands, from the snapshots and summaries")
    p.add_argument("--summaries", type=Path, default=SUMMARIES)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--page", type=Path, help="a page whose status markers receive the table")
    p.set_defaults(func=status)
    p = sub.add_parser("stage-two", help="(internal) TwoStage's search for one cost objective")
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("cost", choices=COSTS)
    p.add_argument("--device", default=None)
    p.set_defaults(func=stage_two)
    p = sub.add_parser("evaluate", help="(internal) fronts and cross-evaluations of one seed")
    p.add_argument("--root", type=Path, default=Path("runs/compare"))
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--summaries", type=Path, default=SUMMARIES)
    p.add_argument("--device", default="cpu")
    p.set_defaults(
        func=lambda a: __import__("compare_analysis").evaluate_seed(
            a.root, a.seed, a.summaries, a.device
        )
    )
    p = sub.add_parser("report", help="docs/results.md from the per-seed summaries")
    p.add_argument("--summaries", type=Path, default=SUMMARIES)
    p.add_argument("--page", type=Path, default=ROOT / "docs" / "results.md")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "compare_fmnist.yaml",
                   help="the configuration the seeds ran (shown on the page)")  # fmt: skip
    p.add_argument("--planned", type=int, default=5, help="seeds the experiment plans")
    p.add_argument("--title", default="Method comparison on Fashion-MNIST (paired seeds)")
    p.add_argument(
        "--note",
        default="",
        help="a paragraph shown under the seeds line (default: <summaries>/note.md if there)",
    )
    p.add_argument("--jobs", type=int, default=2, help="the jobs the seeds ran side by side")
    p.set_defaults(
        func=lambda a: __import__("compare_analysis").report(
            a.summaries, a.page, a.config, a.planned, a.title, note=a.note, jobs=a.jobs
        )
    )
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
