"""TwoStage's second stage: the PareCO search engine run once, on frozen weights.

Stage one (``pareco train --method twostage``) trains with random per-group widths. Stage two
(``pareco search RUNDIR``) runs the same GP-guided, Pareto-aware proposals as PareCO, but after
training: each candidate is scored once on two training batches (train-mode BN), and the weights
never change, so nothing is re-scored. The result is ``RUNDIR/history.jsonl`` in the format a
PareCO run writes, from which ``pareco front`` takes its candidates.

A search of 1000 candidates fits the GP about 500 times (most of an hour on one CPU core), so it
saves its state (history, generator, the GP's warm start) to ``RUNDIR/search_state.pt`` about once
a minute; ``pareco search`` run again on the same run continues from there and proposes what an
uninterrupted search would have. The file is removed once ``history.jsonl`` is written.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import torch

from pareco.atomic import write_bytes_atomic
from pareco.cost_metrics import run_pricer
from pareco.errors import RunError
from pareco.evaluate import score_widths
from pareco.run import Run, load_run
from pareco.rundir import SEARCH_STATE, RunLock, resume_command
from pareco.samplers import (
    default_search_candidates,
    default_warmup,
    proposal_budget,
    search_config,
)


def run_search(
    run_dir: str | Path,
    *,
    candidates: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    save_every: float = 60.0,
) -> dict[str, Any]:
    """Search the frozen weights of a finished ``twostage`` run; writes ``history.jsonl``.

    Args:
        run_dir: a finished ``--method twostage`` run.
        candidates: how many widths to propose; default: the run's ``search_candidates``, else
            `default_search_candidates`: as many scoring images as a PareCO run of the same
            length spends re-scoring its history (at most the paper's 1000 candidates).
        save_every: seconds between saves of the search state (``SEARCH_STATE``); a search
            that finds one for the same run, cost and budget continues from it.

    Returns:
        A summary: number of candidates and scoring images, ``score_seconds`` (scoring only) and
        ``seconds`` (the whole search, GP included), both summed over the processes of a search
        that was interrupted and continued. ``seconds`` is None when the search continued from a
        state saved before pareco recorded it (the earlier part's time is unknown).
    """
    run = load_run(run_dir, device)
    cfg = run.config
    if cfg.method != "twostage":
        raise RunError(
            f"{run_dir} is a {cfg.method} run: `pareco search` is TwoStage's second stage"
        )
    if not run.finished:
        raise RunError(
            f"{run_dir} has not finished training: resume it with "
            f"`{resume_command(run_dir, cfg.data)}`"
        )
    lock = RunLock(run_dir, instead="")  # a second search, or a training, of it: one line
    try:
        return _search(run, Path(run_dir), candidates, device, progress, save_every)
    finally:
        lock.release()


def _search(
    run: Run,
    run_dir: Path,
    candidates: int | None,
    device: str,
    progress: bool,
    save_every: float,
) -> dict[str, Any]:
    from pareco.search import ParecoSearch

    cfg = run.config
    steps = run.state["step"]
    proposals, _ = proposal_budget(steps, cfg.num_sampled, cfg.tau, cfg.num_proposals)
    budget = candidates or cfg.search_candidates
    budget = budget or default_search_candidates(
        proposals, cfg.num_sampled, cfg.calib_images, cfg.batch_size
    )
    batches = run.data.scoring_batches(2, cfg.batch_size, cfg.seed + 2, device)
    search = ParecoSearch(
        run_pricer(run.net, run.run_dir, cfg.latency_table).ratio_fn(cfg.cost),
        search_config(
            cfg,
            run.net.space,
            warmup=cfg.warmup_proposals or default_warmup(proposals),
            num_classes=run.data.num_classes,
        ),
        channels=run.net.space.channels,  # no channel vector is scored twice on frozen weights
    )
    state_path = Path(run_dir) / SEARCH_STATE
    key = {"cost": cfg.cost, "budget": budget, "step": steps}
    score_seconds, earlier = 0.0, 0.0
    started = time.monotonic()
    saved = _load_state(state_path, key)
    if saved is not None:  # an interrupted search of the same run: continue it
        search.load_state_dict(saved["search"])
        score_seconds, earlier = saved["score_seconds"], saved.get("seconds")
    else:  # the weights are frozen: the smallest network is scored once, on the same batches
        smallest = search.smallest.unsqueeze(0)
        search.update_smallest_loss(float(score_widths(run.net, smallest, batches)[0]))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=budget, initial=len(search.history), desc="twostage search",
                   leave=False, dynamic_ncols=True)  # fmt: skip
    last_save = time.monotonic()
    while len(search.history) < budget:
        if time.monotonic() - last_save >= save_every:
            seconds = None if earlier is None else earlier + time.monotonic() - started
            _save_state(state_path, key, search.state_dict(), score_seconds, seconds)
            last_save = time.monotonic()
        scored = len(search.history)
        records = search.propose(scored)
        start = time.perf_counter()
        alphas = torch.stack([torch.as_tensor(r.alpha, dtype=torch.float64) for r in records])
        losses = score_widths(run.net, alphas, batches)
        score_seconds += time.perf_counter() - start
        search.update_losses([r.index for r in records], losses, scored)
        if bar is not None:
            bar.update(len(records))
    if bar is not None:
        bar.close()
    search.history.to_jsonl(Path(run_dir) / "history.jsonl")
    state_path.unlink(missing_ok=True)
    return {
        "candidates": len(search.history),
        "score_images": len(search.history) * sum(len(y) for _, y in batches),
        "score_seconds": score_seconds,
        "seconds": None if earlier is None else earlier + time.monotonic() - started,
    }


def _save_state(
    path: Path,
    key: dict[str, Any],
    search: dict[str, Any],
    score_seconds: float,
    seconds: float | None = None,
) -> None:
    buf = io.BytesIO()
    state = {"key": key, "search": search, "score_seconds": score_seconds, "seconds": seconds}
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue())


def _load_state(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of an interrupted search with the same ``key``, else None (a state of
    another cost or budget, or an unreadable one, is set aside as ``.stale`` and not used)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            return state
    except Exception:  # a damaged file: start over rather than fail
        pass
    path.replace(path.with_name(path.name + ".stale"))
    return None
