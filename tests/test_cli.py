"""Command line and configuration: every key settable, every bad input one clear line."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from test_train import TINY as TRAIN_TINY

from pareco import cli
from pareco.config import HELP, ConfigError, TrainConfig

TINY = {**TRAIN_TINY, "epochs": 1, "method": "slim"}
TINY.pop("log_every")


def _config_file(tmp_path: Path, text: str | None = None, **kw) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text if text is not None else yaml.safe_dump({**TINY, **kw}))
    return path


def _one_line_error(capsys, argv: list[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_every_config_key_has_a_flag_with_help_and_default(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
        assert f.name in HELP, f"TrainConfig.{f.name} has no help line in config.HELP"
    assert "(default: 0.9)" in text  # momentum
    assert "(default: 0.42 0.6 0.8 1.0)" in text  # eval_widths


def test_flags_set_dicts_lists_and_booleans():
    argv = ["train", "--model", "smallnet", "--model-kwargs", "width=8",
            "--synthetic", "num_train=100", "shape=[1,8,8]", "--eval-widths", "0.5", "1",
            "--no-amp", "--momentum", "0.8", "--lr", "1e-3", "--tau", "none"]  # fmt: skip
    cfg = cli.resolve_train_config(cli.build_parser().parse_args(argv))
    assert cfg.model_kwargs == {"width": 8}
    assert cfg.synthetic == {"num_train": 100, "shape": [1, 8, 8]}
    assert cfg.eval_widths == [0.5, 1.0] and cfg.amp is False
    assert cfg.momentum == 0.8 and cfg.lr == 0.001 and cfg.tau is None


def test_yaml_exponent_strings_are_numbers_and_types_name_the_key(tmp_path):
    path = _config_file(tmp_path, "lr: 1e-3\nweight_decay: 5e-4\nepochs: 3\n")
    cfg = cli.resolve_train_config(cli.build_parser().parse_args(["train", "--config", str(path)]))
    assert cfg.lr == 0.001 and cfg.weight_decay == 0.0005  # PyYAML reads both as strings
    with pytest.raises(ConfigError, match=r"^epochs must be a whole number, got 2\.5$"):
        TrainConfig.from_dict({"epochs": 2.5})
    with pytest.raises(ConfigError, match=r"^batch_size must be a whole number, got 'many'$"):
        TrainConfig.from_dict({"batch_size": "many"})
    with pytest.raises(ConfigError, match=r"^eval_widths must be a number, got 'x'$"):
        TrainConfig.from_dict({"eval_widths": [0.5, "x"]})
    with pytest.raises(ConfigError, match=r"^amp must be true or false"):
        TrainConfig.from_dict({"amp": "maybe"})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model: foo\n", "unknown model 'foo': give a zoo name"),
        ("val_size: -5\n", "val_size must be >= 1, got -5"),
        ("model: smallnet\nmodel_kwargs: {widht: 8}\n", "smallnet takes no argument widht"),
        ("model: resnet20\nmodel_kwargs: {depth: 8}\n", "model_kwargs do not fit resnet20"),
        ("data: synthetic\nsynthetic: {num_trian: 9}\n", "synthetic: unknown key(s) num_trian"),
        ("epochs: 2.5\n", "epochs must be a whole number"),
        ("lr: fast\n", "lr must be a number, got 'fast'"),
        ("[1, 2]\n", "must hold a mapping"),
    ],
)
def test_config_file_errors_are_one_line(tmp_path, capsys, text, expected):
    path = _config_file(tmp_path, text)
    err = _one_line_error(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "r")])
    assert expected in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--train-subset", "0"], "train_subset must be >= 1"),
        (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        (["--threads", "-1"], "threads must be >= 1"),
        (["--batch-size", "100000"], "--batch-size 100000 is larger than the 288 training"),
        (["--model-kwargs", "width"], "--model-kwargs takes KEY=VALUE pairs"),
        (["--resume", "--restart"], "--resume and --restart exclude each other"),
    ],
)
def test_flag_errors_are_one_line(tmp_path, capsys, flags, expected):
    path = _config_file(tmp_path)
    out = tmp_path / "r"
    err = _one_line_error(capsys, ["train", "--config", str(path), "--out", str(out), *flags])
    assert expected in err


def test_out_naming_a_file_is_refused_and_left_alone(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    err = _one_line_error(capsys, ["train", "--config", str(_config_file(tmp_path)),
                                   "--out", str(target)])  # fmt: skip
    assert "is a file, not a directory" in err
    assert target.read_text() == "mine"


def test_folder_with_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    err = _one_line_error(capsys, ["train", "--config", str(_config_file(tmp_path)),
                                   "--out", str(out)])  # fmt: skip
    assert "holds files that are not a pareco run's (thesis.tex)" in err
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_set_widths_rejects_text():
    import torch

    import pareco
    from pareco import models

    net = pareco.slim(models.create("smallnet", in_channels=1, width=4), torch.zeros(1, 1, 12, 12))
    with pytest.raises(ValueError, match="alpha must be numbers"):
        net.set_widths("abc")


def test_export_budget_must_be_a_ratio(tmp_path, capsys):
    err = _one_line_error(capsys, ["export", str(tmp_path), "--budget", "2"])
    assert "cost ratio in (0, 1]" in err
    err = _one_line_error(capsys, ["export", str(tmp_path), "--budget", "half"])
    assert "--budget must be a number" in err


def test_front_cost_typos_and_flag_prefixes_are_refused(tmp_path, capsys):
    err = _one_line_error(capsys, ["front", str(tmp_path), "--cost", "joules"])
    assert "unknown front cost 'joules'; choose one of flops, memory, params" in err
    with pytest.raises(SystemExit):  # argparse's own exit, status 2
        cli.main(["front", str(tmp_path), "--cost-s", "4"])
    assert "unrecognized arguments: --cost-s 4" in capsys.readouterr().err


def test_front_and_export_name_a_bad_device(tmp_path, capsys):
    err = _one_line_error(capsys, ["front", str(tmp_path), "--device", "tpu"])
    assert "device must be auto, cpu, cuda or cuda:N" in err


def test_models_table_has_units_and_headers(capsys):
    assert cli.main(["models", "--name", "smallnet"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["model", "input", "groups", "MACs", "params", "peak", "act.",
                              "(fp32)", "description"]  # fmt: skip
    assert row.split()[6] in ("KB", "MB", "B")  # peak activation memory carries its unit


def test_compare_writes_next_to_the_first_run_by_default():
    args = cli.build_parser().parse_args(["compare", "runs/a", "runs/b"])
    assert args.out is None
    assert cli.compare_out(args) == Path("runs/a/compare")
