"""``pareco.errors``: one base for every error pareco raises on purpose; the CLI prints any of them
as one line."""

import pytest

import pareco
from pareco import cli
from pareco.checkpoint import CheckpointError
from pareco.config import ConfigError
from pareco.cost_metrics import UnknownMetric
from pareco.data import DatasetError
from pareco.errors import ParecoError, RunError, first_line
from pareco.export import ExportError
from pareco.front import FrontError
from pareco.latency import LatencyError
from pareco.model_path import ModelSpecError
from pareco.rundir import Interrupted, NonFiniteState, RunDirError
from pareco.search.history import HistoryFileError
from pareco.slimming import SlimError
from pareco.trainer import NonFiniteLoss
from pareco.weights import WeightsError

ERRORS = [
    cli.UserError, CheckpointError, ConfigError, DatasetError, ExportError, FrontError,
    HistoryFileError, ModelSpecError, RunDirError, NonFiniteState, Interrupted, RunError,
    NonFiniteLoss, UnknownMetric, LatencyError, WeightsError, SlimError,
]  # fmt: skip


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_every_error_derives_from_the_base(error):
    assert issubclass(error, ParecoError) and pareco.ParecoError is ParecoError


def test_errors_keep_their_builtin_bases():
    """``except ValueError`` / ``except RuntimeError`` around older code still catch them."""
    assert issubclass(ConfigError, ValueError) and issubclass(ExportError, ValueError)
    assert issubclass(RunError, RuntimeError) and issubclass(CheckpointError, RuntimeError)


def test_the_cli_prints_any_pareco_error_as_one_line(monkeypatch, capsys):
    def fails(args):
        raise HistoryFileError("runs/x/history.jsonl line 3 is damaged (Expecting value)")

    monkeypatch.setattr(cli, "cmd_models", fails)
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err
    assert err == "pareco models: error: runs/x/history.jsonl line 3 is damaged (Expecting value)\n"


def test_first_line():
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError("  ")) == "ValueError"
