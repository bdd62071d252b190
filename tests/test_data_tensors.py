"""``--data tensors``: a file of tensors (token ids, a tokenizer's dict, features) as a dataset."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from pareco import cli
from pareco.build import build_data, build_net
from pareco.config import ConfigError, TrainConfig
from pareco.data import DatasetError
from pareco.data.tensors import TensorData, read_tensor_file
from pareco.model_path import ModelSpecError
from pareco.run import RunError, load_run


def tokens(n: int, seed: int, length: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids whose first token names the class (3 classes), and a padding mask."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    ids = torch.randint(5, 100, (n, length), generator=g)
    ids[:, 0] = y + 1
    mask = (torch.arange(length) < torch.randint(4, length + 1, (n, 1), generator=g)).long()
    return ids * mask, mask, y


def save_pt(path, n=400, n_test=100, **extra):
    ids, _, y = tokens(n, 0)
    ids_t, _, y_t = tokens(n_test, 1)
    torch.save({"train_x": ids, "train_y": y, "test_x": ids_t, "test_y": y_t, **extra}, path)
    return path


def save_npz_dict(path, n=400, n_test=100):
    """A tokenizer's dict inputs, one array per key (``train_x.input_ids``, ...)."""
    ids, mask, y = tokens(n, 0)
    ids_t, mask_t, y_t = tokens(n_test, 1)
    arrays = {"train_x.input_ids": ids, "train_x.attention_mask": mask, "train_y": y}
    arrays |= {"test_x.input_ids": ids_t, "test_x.attention_mask": mask_t, "test_y": y_t}
    np.savez(
        path, **{k: v.numpy() for k, v in arrays.items()}, class_names=np.array(["a", "b", "c"])
    )
    return path


def test_a_pt_file_is_carved_like_the_image_datasets(tmp_path):
    path = save_pt(tmp_path / "d.pt")
    data = TensorData(path, batch_size=32, seed=3, val_size=40, calib_size=20, train_subset=300)
    assert data.split_sizes() == {"train": 300, "val": 40, "calib": 20, "test": 100}
    assert data.input_shape == (12,) and data.num_classes == 3 and not data.test_is_val
    train = torch.cat([x for x, _ in data.train_loader(seed=0)])
    val, calib = data.full_batch("val")[0], data.full_batch("calib")[0]
    assert train.dtype == torch.int64  # token ids stay integers
    rows = {tuple(r) for r in train.tolist()}
    assert len(rows) == 300 and not rows & {tuple(r) for r in val.tolist()}
    assert not rows & {tuple(r) for r in calib.tolist()}
    again = TensorData(path, batch_size=32, seed=3, val_size=40, calib_size=20, train_subset=300)
    assert torch.equal(again.full_batch("val")[0], val)  # the seed fixes the carving
    other = TensorData(path, batch_size=32, seed=4, val_size=40, calib_size=20)
    assert not torch.equal(other.full_batch("val")[0], val)


def test_numpy_features_train_as_float32(tmp_path):
    """float64 features (numpy's default) reach the model as float32; the labels may be any
    integer type."""
    g = np.random.default_rng(0)
    x, y = g.normal(size=(200, 6)), g.integers(0, 2, 200).astype(np.int32)
    np.savez(tmp_path / "f.npz", train_x=x, train_y=y, test_x=x[:20], test_y=y[:20])
    data = TensorData(tmp_path / "f.npz", batch_size=16, val_size=20, calib_size=16)
    xb, yb = next(iter(data.train_loader(seed=0)))
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert data.example_input().dtype == torch.float32
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    assert model(xb).shape == (16, 2)


def test_batches_are_one_index_operation_and_resume_mid_epoch(tmp_path):
    data = TensorData(save_pt(tmp_path / "d.pt"), batch_size=32, seed=0, val_size=40, calib_size=20)
    loader = data.train_loader(seed=5)
    assert len(loader) == -(-340 // 32)
    whole = [(x.clone(), y.clone()) for x, y in loader]
    assert all(x.shape == (32, 12) for x, _ in whole[:-1])
    resumed = data.train_loader(seed=5)
    resumed.load_state_dict({**loader.state_dict(), "epoch": 0, "position": 4})
    for (x, y), (x2, y2) in zip(whole[4:], resumed, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_ranks_under_torchrun_read_disjoint_shards(tmp_path):
    data = TensorData(save_pt(tmp_path / "d.pt"), batch_size=16, seed=0, val_size=40, calib_size=20)
    loaders = [data.train_loader(seed=1, shard=(rank, 2)) for rank in (0, 1)]
    assert [loader.batch_size for loader in loaders] == [8, 8]  # halves of the global batch
    assert len(loaders[0]) == len(loaders[1]) == -(-170 // 8)  # the same steps on every rank
    shards = [{tuple(r) for x, _ in loader for r in x.tolist()} for loader in loaders]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == 340


def test_an_npz_file_gives_dict_inputs_and_class_names(tmp_path):
    data = TensorData(save_npz_dict(tmp_path / "d.npz"), batch_size=32, val_size=40, calib_size=20)
    x, y = next(iter(data.train_loader(seed=0)))
    assert set(x) == {"input_ids", "attention_mask"} and x["input_ids"].shape == (32, 12)
    assert data.class_names == ("a", "b", "c") and y.dtype == torch.int64
    assert "input_ids 12, attention_mask 12" in data.describe()


GOOD = {"train_x": torch.zeros(4, 2), "train_y": torch.zeros(4).long(),
        "test_x": torch.zeros(2, 2), "test_y": torch.zeros(2).long()}  # fmt: skip


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"not a pickle"), "cannot be read as tensors"),
        (lambda p: torch.save([1, 2], p), "holds a list, not a dict of tensors"),
        (lambda p: torch.save({"train_x": GOOD["train_x"]}, p), "has no train_y, test_x, test_y"),
        (lambda p: torch.save({**GOOD, "train_y": torch.zeros(4)}, p), "labels must be N integers"),
        (lambda p: torch.save({**GOOD, "train_y": GOOD["train_y"][:3]}, p),
         "4 input rows but 3 labels"),
        (lambda p: torch.save({**GOOD, "test_x": torch.zeros(2, 3)}, p),
         "train inputs are 2 per row but test inputs are 3"),
        (lambda p: save_pt(p, class_names=["a", "b"]), "labels reach 2 but class_names names 2"),
        (lambda p: torch.save({**GOOD, "train_x": "text"}, p), "train_x is a str"),
    ],
    ids=["missing", "corrupt", "not-a-dict", "missing-keys", "float-labels", "row-mismatch",
         "shape-mismatch", "too-few-names", "not-a-tensor"],
)  # fmt: skip
def test_a_bad_file_is_one_line_saying_what_to_save(tmp_path, write, message):
    path = tmp_path / "d.pt"
    write(path)
    with pytest.raises(DatasetError, match=message) as err:
        read_tensor_file(path)
    assert "\n" not in str(err.value)


def test_a_pt_file_is_memory_mapped_and_read_a_batch_at_a_time(tmp_path):
    """Carving and an epoch of batches leave the rows on disk: the process's anonymous memory
    grows by far less than the 64 MB of inputs (a legacy-format file, which cannot be mapped,
    is read whole and still loads)."""
    path = tmp_path / "big.pt"
    n = 500_000
    x = torch.arange(n * 32, dtype=torch.int32).view(n, 32)
    torch.save({"train_x": x, "train_y": torch.arange(n) % 3, "test_x": x[:100],
                "test_y": torch.arange(100) % 3}, path)  # fmt: skip
    code = f"""
import torch
from pareco.data.tensors import TensorData
def anon():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon"))
torch.zeros(1).sum()  # torch's own allocations first
before = anon()
data = TensorData({str(path)!r}, batch_size=4096, val_size=1000, calib_size=256)
rows = sum(int(x.shape[0]) for x, _ in data.train_loader(seed=0))
print(rows, (anon() - before) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, grown_mb = map(int, out.stdout.split())
    assert rows == n - 1000 - 256 and grown_mb < 32, out.stdout
    legacy = tmp_path / "legacy.pt"
    small = {"train_x": x[:400], "train_y": torch.arange(400) % 3, "test_x": x[:10],
             "test_y": torch.arange(10) % 3}  # fmt: skip
    torch.save(small, legacy, _use_new_zipfile_serialization=False)
    data = TensorData(legacy, batch_size=32, val_size=40, calib_size=20)
    assert data.split_sizes()["train"] == 340


def test_a_folder_or_other_suffix_is_refused(tmp_path):
    for path in (tmp_path, tmp_path / "d.csv"):
        with pytest.raises(DatasetError, match=r"reads one \.pt or \.npz file"):
            read_tensor_file(path)


def test_config_needs_the_file_and_refuses_image_settings(tmp_path):
    with pytest.raises(ConfigError, match="data tensors needs data_dir"):
        TrainConfig(data="tensors").validate()
    with pytest.raises(ConfigError, match="image_size applies to image datasets"):
        TrainConfig(data="tensors", data_dir="d.pt", image_size=32).validate()


def test_a_zoo_model_on_token_ids_says_to_name_a_factory(tmp_path):
    config = TrainConfig(data="tensors", data_dir=str(save_pt(tmp_path / "d.pt")), model="smallnet",
                         val_size=40, batch_size=32)  # fmt: skip
    with pytest.raises(ModelSpecError, match=r"takes C x H x W images.*inputs are 12"):
        build_net(config, build_data(config))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["custom_model:build_text", "custom_model:build_bert"])
def test_cli_trains_fronts_and_exports_a_text_model_from_a_tensor_file(tmp_path, model):
    """train → front → export through the CLI on a tokenizer's dict inputs, for a text CNN and
    a Hugging Face BERT as it is; ``front`` and ``export`` rebuild the data from config.json
    alone; the export keeps the front's accuracy."""
    if model.endswith("bert"):
        pytest.importorskip("transformers")
    path = save_npz_dict(tmp_path / "tokens.npz", n=600, n_test=200)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": model, "data": "tensors", "data_dir": str(path),
        "val_size": 60, "calib_size": 32, "batch_size": 32, "epochs": 3,
        "lr": 0.05 if model.endswith("bert") else 0.1,
        "num_proposals": 6, "warmup_proposals": 2, "recal_batches": 2, "threads": 1,
        "eval_widths": [0.42, 1.0]}))  # fmt: skip
    run = tmp_path / "run"
    assert cli.main(["train", "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == "tensors" and saved["data_dir"] == str(path)
    rows = json.loads((run / "eval.json").read_text())["uniform"]
    assert rows[-1]["test_accuracy"] > 0.6  # the class is in the first token: learnable
    assert cli.main(["front", str(run), "--no-progress"]) == 0
    formats = "both" if _has("onnxruntime") else "pt"
    assert cli.main(["export", str(run), "--budget", "0.8", "--format", formats,
                     "--no-progress"]) == 0  # fmt: skip
    report = json.loads(next((run / "export").rglob("report.json")).read_text())
    assert all(check["ok"] for check in report["checks"].values())
    x = load_run(run).data.example_input()
    assert x["input_ids"].dtype == torch.int64


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_fit_on_a_tensor_file_records_it_so_another_process_can_load_the_run(tmp_path):
    import pareco
    from pareco import run as run_module

    path = save_pt(tmp_path / "d.pt")
    data = TensorData(path, batch_size=32, val_size=40, calib_size=20)
    run = pareco.fit("custom_model:build_text", data, out=tmp_path / "r", method="slim",
                     epochs=1, eval_widths=[1.0], recal_batches=1, threads=1,
                     progress=False)  # fmt: skip
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert (saved["data"], saved["data_dir"], saved["batch_size"]) == ("tensors", str(path), 32)
    run_module._SOURCES.clear()  # as in a fresh process: only config.json says what the data is
    again = load_run(run.run_dir)
    assert isinstance(again.data, TensorData) and again.data.split_sizes() == data.split_sizes()
    assert torch.equal(again.data.full_batch("val")[0], data.full_batch("val")[0])
    with pytest.raises(RunError, match="val_size=50 but the TensorData was built with val_size=40"):
        pareco.fit("custom_model:build_text", data, out=tmp_path / "r2", val_size=50)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_a_latency_budget_on_a_tokenizers_dict(tmp_path, runtime, capsys):
    """latency-table → cost: latency → front → export --budget-ms on dict inputs: whole networks
    are timed with input_ids and attention_mask both fed (by name in onnxruntime)."""
    if runtime == "onnxruntime" and not _has("onnxruntime"):
        pytest.skip("needs onnxruntime")
    path = save_npz_dict(tmp_path / "tokens.npz", n=400, n_test=100)
    config = tmp_path / "c.yaml"
    base = {"model": "custom_model:build_text", "data": "tensors", "data_dir": str(path),
            "val_size": 40, "calib_size": 32, "batch_size": 32, "threads": 1}  # fmt: skip
    config.write_text(yaml.safe_dump(base))
    table = tmp_path / "t.json"
    args = ["latency-table", "--config", str(config), "--runtime", runtime, "--out", str(table),
            "--max-points", "3", "--samples", "3", "--repeats", "3",
            "--no-round-to-probe"]  # fmt: skip
    assert cli.main(args) == 0
    assert {"embedding", "conv1d", "batchnorm1d", "linear"} <= {
        json.loads(k)["op"] for k in json.loads(table.read_text())["kinds"]
    }
    run_config = {**base, "cost": "latency", "latency_table": str(table), "epochs": 1,
                  "num_proposals": 4, "warmup_proposals": 2, "recal_batches": 1,
                  "eval_widths": [1.0]}  # fmt: skip
    config.write_text(yaml.safe_dump(run_config))
    run = tmp_path / "run"
    assert cli.main(["train", "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    assert cli.main(["front", str(run), "--no-progress"]) == 0
    front = json.loads((run / "front.json").read_text())
    generous = 10 * max(p["latency"] for p in front["points"])
    capsys.readouterr()
    args = ["export", str(run), "--budget-ms", f"{generous}", "--format", "pt", "--no-progress"]
    assert cli.main(args) == 0, capsys.readouterr().err
    report = json.loads(next((run / "export").rglob("report.json")).read_text())
    assert report["latency"]["measured_ms"] > 0 and report["latency"]["runtime"]["name"] == runtime


def test_a_run_whose_data_file_moved_says_where_it_looked(tmp_path, capsys):
    """front and export load the data from the path in config.json: when the file is gone the
    line says so and how to point the run at its new place (no --data-dir flag there); compare
    refuses runs trained on other files."""
    path = save_pt(tmp_path / "d.pt")
    run = tmp_path / "run"
    args = ["train", "--model", "custom_model:build_text", "--data", "tensors", "--data-dir",
            str(path), "--out", str(run), "--method", "slim", "--epochs", "1",
            "--batch-size", "32", "--val-size", "40", "--eval-widths", "1", "--threads", "1",
            "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    moved = path.rename(tmp_path / "elsewhere.pt")
    capsys.readouterr()
    assert cli.main(["front", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"at {path}, which is not there now" in err and "set data_dir in" in err
    assert err.count("\n") == 1
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data_dir": str(moved)}))
    assert cli.main(["front", str(run), "--no-progress"]) == 0

    # a run on another file of the same shape: its test set differs, compare refuses the pair
    other = tmp_path / "other"
    save_pt(tmp_path / "other.pt", n=300)
    args[args.index(str(path))], args[args.index(str(run))] = str(tmp_path / "other.pt"), str(other)
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(run), str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "were trained on data from other places" in err and err.count("\n") == 1
    assert cli.main(["compare", str(run), str(run), "--no-progress"]) == 0
