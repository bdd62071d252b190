"""``pareco.checkpoint``: checksummed atomic saves, the payload schema, older payloads loading."""

import hashlib
import io

import pytest
import torch
from test_train import tiny

from pareco.checkpoint import (
    FORMAT,
    MAGIC,
    PAYLOAD_KEYS,
    SCHEMA,
    CheckpointError,
    load_checkpoint,
    read_checkpoint_file,
    save_checkpoint,
    upgrade_payload,
)
from pareco.errors import ParecoError
from pareco.run import load_run
from pareco.trainer import Trainer


def _write_old_way(path, state, checksum=True):
    """A checkpoint as pareco wrote it before the payload had a schema field."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    payload = buffer.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" if checksum else b""
    path.write_bytes(header + payload)


def test_a_saved_payload_carries_the_schema(tmp_path):
    save_checkpoint({"step": 3, "model": {"w": torch.ones(2)}}, tmp_path)
    state = read_checkpoint_file(tmp_path / "checkpoint.pt")
    assert state["schema"] == SCHEMA and state["format"] == FORMAT and state["step"] == 3


def test_a_trainer_checkpoint_holds_every_payload_key(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim", epochs=1), progress=False)
    trainer.save()
    trainer.close()
    state = load_checkpoint(tmp_path / "run")
    assert set(PAYLOAD_KEYS) <= set(state)


@pytest.mark.parametrize("checksum", [True, False])
def test_an_old_payload_without_schema_or_train_seconds_still_loads(tmp_path, checksum):
    state = {"step": 7, "finished": True, "model": {"w": torch.arange(3.0)}}
    _write_old_way(tmp_path / "checkpoint.pt", state, checksum=checksum)
    loaded = load_checkpoint(tmp_path, repair=False)
    assert loaded["schema"] == SCHEMA and loaded["train_seconds"] == 0.0
    assert loaded["step"] == 7 and torch.equal(loaded["model"]["w"], torch.arange(3.0))


def test_a_run_checkpointed_the_old_way_loads_and_resumes(tmp_path):
    """A finished run whose checkpoint was written before the schema field: its weights load
    for the front, and it resumes (as training would after a crash) to the same state."""
    config = tiny(tmp_path, method="slim", epochs=1)
    Trainer(config, progress=False).fit()
    run_dir = tmp_path / "run"
    state = load_checkpoint(run_dir)
    old = {k: v for k, v in state.items() if k not in ("format", "schema", "train_seconds")}
    _write_old_way(run_dir / "checkpoint.pt", old)
    run = load_run(run_dir)
    assert run.finished
    for k, v in run.net.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    resumed = Trainer(config, resume=True, progress=False)
    try:
        assert resumed.step == state["step"] and resumed.train_seconds == 0.0
    finally:
        resumed.close()


def test_a_newer_schema_is_refused_in_one_line(tmp_path):
    with pytest.raises(CheckpointError, match=r"schema 99; this pareco reads schemas 1 to"):
        upgrade_payload({"format": FORMAT, "schema": 99}, "x.pt")
    save_checkpoint({"step": 1}, tmp_path)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "schema": SCHEMA + 1, "step": 1}, buffer)
    payload = buffer.getvalue()
    (tmp_path / "checkpoint.pt").write_bytes(
        MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    )
    with pytest.raises(CheckpointError, match="upgrade pareco") as err:
        read_checkpoint_file(tmp_path / "checkpoint.pt")
    assert isinstance(err.value, ParecoError) and "\n" not in str(err.value)


def test_a_foreign_file_is_not_a_checkpoint(tmp_path):
    buffer = io.BytesIO()
    torch.save({"weights": torch.ones(1)}, buffer)
    (tmp_path / "checkpoint.pt").write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="is not a pareco checkpoint"):
        read_checkpoint_file(tmp_path / "checkpoint.pt")
