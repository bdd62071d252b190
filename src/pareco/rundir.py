"""Run-directory integrity: one writer at a time, clean starts, logs that match the checkpoint,
no non-finite state saved, and a checkpoint on SIGINT/SIGTERM.

A run directory is written by one process at a time: :class:`RunLock` holds an exclusive
``flock`` on ``RUNDIR/.lock`` for the life of the writer (the kernel drops it when the process
dies, so a killed run never leaves a stale lock). A new run goes into an empty folder, a folder
of its own killed attempt (set aside first), or — with ``restart`` — a folder whose old run is
set aside into ``RUNDIR/replaced-N/``; anything else is refused. Nothing is ever deleted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pareco.atomic import write_text_atomic
from pareco.checkpoint import CHECKPOINT, DAMAGED, PREVIOUS, TEMPORARY, has_checkpoint
from pareco.cost_metrics import RUN_TABLE
from pareco.errors import ParecoError

LOCK = ".lock"
#: What the channel sorting of a run started from trained weights did (``sort_channels``).
SORT_REPORT = "sort.json"
#: TwoStage's stage-two search state, left while a search is unfinished (``pareco search``).
SEARCH_STATE = "search_state.pt"
#: Files and folders a training run writes into its directory (``front``/``export`` add the rest).
RUN_FILES = (
    "config.json",
    SORT_REPORT,
    SEARCH_STATE,
    RUN_TABLE,  # the latency table a cost: latency run was priced with
    CHECKPOINT,
    PREVIOUS,
    TEMPORARY,
    DAMAGED,
    "history.jsonl",
    "history.jsonl.tmp",  # staging name of runs written before pareco.atomic
    "metrics.jsonl",
    "eval.json",
    "tb",
)
#: Files of a finished run's later steps (``pareco front`` and ``pareco export``).
RESULT_FILES = ("front.json", "front.csv", "front.png", "widths.png", "export", "compare")
REPLACED = "replaced-"


class RunDirError(ParecoError, RuntimeError):
    """A run directory that cannot be written as asked, with what to do."""


class NonFiniteState(RunDirError):
    """Weights, buffers or search losses that are no longer finite numbers."""


class RunLock:
    """An exclusive lock on a run directory for as long as this object lives (or ``release``).

    Raises:
        RunDirError: another process holds it (its pid and host are named).
    """

    def __init__(self, run_dir: str | Path, *, instead: str = "or choose another --out") -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one writer is then the user's care
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(
                f"{self.path.parent} is being written by {holder}: wait for it to finish"
                + (f", {instead}" if instead else "")
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pareco pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            # Unlock explicitly: forked children (DataLoader workers) share the open file, so
            # closing this descriptor alone would leave the lock held while they live.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()


def prepare(run_dir: str | Path, *, resume: bool, restart: bool = False) -> str | None:
    """Check that a run may be written into ``run_dir`` as asked, and make it ready.

    * ``resume``: the folder must hold a checkpoint (or the files to recover one from).
    * a new run: the folder is created; if it holds an earlier attempt that never saved a
      checkpoint, or ``restart`` is given and it holds a run, the old files move into
      ``RUNDIR/replaced-N/``; a folder with a checkpoint (and no ``restart``) or with files that
      are not a pareco run's is refused.

    Call it while holding the :class:`RunLock`.

    Returns:
        A line for the user when files were set aside, else None.

    Raises:
        RunDirError: the folder cannot be used as asked; the message says what to do.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir} is a file, not a directory: choose a directory")
    if resume and restart:
        raise RunDirError("--resume and --restart exclude each other: choose one")
    if resume:
        if not has_checkpoint(run_dir):
            raise RunDirError(
                f"--resume: {run_dir} holds no {CHECKPOINT}; start the run without --resume"
            )
        return None
    if not run_dir.is_dir():
        return None
    _refuse_foreign(run_dir)
    old = [
        p
        for p in run_dir.iterdir()
        if p.name != LOCK and not p.name.startswith(REPLACED) and _is_ours(p.name)
    ]
    if not old:
        return None
    if has_checkpoint(run_dir) and not restart:
        raise RunDirError(
            f"{run_dir} already holds a run: pass --resume to continue it, --restart to set it "
            "aside and start again, or choose another --out"
        )
    aside = _next_replaced(run_dir)
    aside.mkdir()
    for p in old:
        os.replace(p, aside / p.name)
    why = "--restart" if restart else "the earlier attempt never saved a checkpoint"
    return f"pareco: {why}: moved its files into {aside}"


def _is_ours(name: str) -> bool:
    """A file or folder pareco writes into a run directory, including the temporary files of
    its atomic writes (``NAME.tmp``, ``.NAME.PID.tmp``) that a crash can leave behind."""
    if name in RUN_FILES or name in RESULT_FILES or name == LOCK or name.startswith(REPLACED):
        return True
    if name.endswith((".tmp", ".copy")):
        base = name.lstrip(".").split(".")[0]
        return any(f.split(".")[0] == base for f in (*RUN_FILES, *RESULT_FILES))
    return False


def _refuse_foreign(run_dir: Path) -> None:
    """A new run never writes into a folder of the user's own files."""
    foreign = sorted(p.name for p in run_dir.iterdir() if not _is_ours(p.name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise RunDirError(
            f"--out {run_dir} holds files that are not a pareco run's ({shown}): "
            "choose a new or empty directory"
        )


def claim(run_dir: str | Path, *, resume: bool, restart: bool = False) -> RunLock | None:
    """Lock ``run_dir`` for this process and :func:`prepare` it; only the main process (rank 0
    under torchrun, known from ``RANK`` before the process group starts) writes and locks.

    Returns:
        The held lock (None on the other ranks).
    """
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir} is a file, not a directory: choose a directory")
    if resume and not run_dir.is_dir():
        raise RunDirError(
            f"--resume: {run_dir} holds no {CHECKPOINT} (no such folder); start the run "
            "without --resume"
        )
    if not resume and run_dir.is_dir():
        _refuse_foreign(run_dir)  # before the lock file is made: leave such a folder as it was
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    try:
        note = prepare(run_dir, resume=resume, restart=restart)
    except BaseException:
        lock.release()
        raise
    if note:
        print(note, file=sys.stderr, flush=True)
    return lock


def _next_replaced(run_dir: Path) -> Path:
    n = 1
    while (run_dir / f"{REPLACED}{n}").exists():
        n += 1
    return run_dir / f"{REPLACED}{n}"


def truncate_metrics(run_dir: str | Path, step: int) -> int:
    """Drop the lines of ``metrics.jsonl`` logged after ``step`` (the checkpoint a run resumes
    from), so that the steps it trains again are not logged twice. Rewritten atomically.

    Returns:
        How many lines were dropped.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill: it is after the checkpoint
            dropped += 1
            continue
        if isinstance(record, dict) and int(record.get("step", 0)) > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        write_text_atomic(path, "".join(line + "\n" for line in kept))
    return dropped


def non_finite_tensors(module: nn.Module, limit: int = 3) -> list[str]:
    """Names of up to ``limit`` parameters or buffers of ``module`` holding NaN or ±inf.

    BatchNorm running variances can overflow while the training loss stays finite, so the
    buffers are checked as well as the weights.
    """
    bad: list[str] = []
    named: Iterable[tuple[str, torch.Tensor]] = (
        *module.named_parameters(),
        *module.named_buffers(),
    )
    for name, t in named:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(name)
            if len(bad) >= limit:
                break
    return bad


def non_finite_optimizer_state(optimizer: torch.optim.Optimizer) -> bool:
    """Whether any floating-point tensor of the optimizer's state (momentum) is not finite."""
    for state in optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                return True
    return False


def check_finite(
    module: nn.Module,
    step: int,
    run_dir: str | Path,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    losses: torch.Tensor | None = None,
    when: str = "before saving a checkpoint",
) -> None:
    """Stop the run before a non-finite state is saved or fed to the search.

    Raises:
        NonFiniteState: one line naming the step, what went wrong and the last good checkpoint.
    """
    bad = non_finite_tensors(module)
    if optimizer is not None and not bad and non_finite_optimizer_state(optimizer):
        bad = ["the optimizer's momentum"]
    if losses is not None and not bool(torch.isfinite(losses).all()):
        n = int((~torch.isfinite(losses)).sum())
        bad.append(f"{n} of {losses.numel()} search losses")
    if not bad:
        return
    raise NonFiniteState(
        f"training diverged at step {step}: {', '.join(bad)} became NaN or infinite "
        f"({when}); {last_good(run_dir)}"
    )


def resume_command(
    run_dir: str | Path, data: str | None, *, new_lr: bool = False, start_again: bool = False
) -> str:
    """How the run in ``run_dir`` continues (or, ``start_again``, starts over in its folder):
    ``pareco train --resume``/``--restart``, or, for a run that ``pareco.fit`` trained on
    Python loaders (the command line cannot rebuild those), the same ``pareco.fit`` call."""
    from pareco.data.registry import USER_LOADERS

    if data == USER_LOADERS:
        resume = "" if start_again else ", resume=True"
        lr = ", lr=LR" if new_lr else ""
        return f"pareco.fit(model, loaders, out='{run_dir}'{resume}{lr}) as before"
    if start_again:
        return f"pareco train --restart --out {run_dir} --lr LR (plus your other options)"
    return f"pareco train --resume --out {run_dir}" + (" --lr LR" if new_lr else "")


def last_good(run_dir: str | Path) -> str:
    """What the user can go back to, read from the directory itself (never assumed)."""
    from pareco.checkpoint import CheckpointError, read_checkpoint_file

    run_dir = Path(run_dir)
    for name in (CHECKPOINT, PREVIOUS):
        try:
            state = read_checkpoint_file(run_dir / name)
        except CheckpointError:
            continue
        data = (state.get("config") or {}).get("data")
        return (
            f"the last good checkpoint ({name}, step {state.get('step')}) is intact: resume "
            f"with a lower learning rate, {resume_command(run_dir, data, new_lr=True)}"
        )
    try:
        data = json.loads((run_dir / "config.json").read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        data = None
    again = resume_command(run_dir, data, new_lr=True, start_again=True)
    return f"no checkpoint was saved: start again with a lower learning rate, {again}"


class Interrupted(RunDirError):
    """A run stopped by SIGINT/SIGTERM after saving its checkpoint."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """Turn SIGINT/SIGTERM into a request the training loop answers at the end of its step
    (save a checkpoint, then stop), instead of dying mid-step. A second signal stops at once.

    Use as a context manager around the loop; outside the main thread it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # asked twice: do not wait for the step to end
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            self._previous.clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""
