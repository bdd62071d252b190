"""``pareco train --model package.module:factory``: a model from outside the zoo, and its errors."""

import json

import pytest
import yaml

from pareco import cli
from pareco.model_path import ModelSpecError, resolve_model

TINY = dict(
    model_kwargs={"width": 4},
    data="synthetic",
    synthetic={"num_train": 192, "num_test": 64, "shape": [1, 12, 12]},
    val_size=32,
    calib_size=32,
    batch_size=32,
    epochs=1,
    recal_batches=2,
    eval_widths=[1.0],
    threads=1,
    method="slim",
)


def _config(tmp_path, **kw):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**TINY, **kw}))
    return str(path)


def test_cli_trains_an_import_path_model_then_fronts_and_exports_it(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--config", _config(tmp_path), "--model", "custom_model:build", "--out", str(run)]
    assert cli.main(["train", *args, "--no-progress"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == "custom_model:build" and saved["model_kwargs"] == {"width": 4}
    assert cli.main(["front", str(run), "--no-progress"]) == 0
    assert cli.main(["export", str(run), "--budget", "0.8", "--no-progress"]) == 0
    assert any((run / "export").rglob("model.json"))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz'"),
        ("custom_model:missing", "has no 'missing'"),
        ("custom_model:not_a_model", "returned int, not a torch.nn.Module"),
        ("custom_model:broken", "this factory always fails"),
        ("not_in_the_zoo", "unknown model 'not_in_the_zoo'"),
    ],
)
def test_bad_model_paths_are_one_clear_line(tmp_path, capsys, model, message):
    run = tmp_path / "run"
    code = cli.main(["train", "--config", _config(tmp_path), "--model", model, "--out", str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (run / "checkpoint.pt").exists()


def test_factory_gets_num_classes_and_in_channels_only_when_it_takes_them():
    model, ignored = resolve_model(
        "custom_model:TinyNet", num_classes=7, in_channels=2, kwargs={"width": 3}
    )
    assert model.classifier.out_features == 7 and model.features[0].in_channels == 2
    assert ignored == ()
    with pytest.raises(ModelSpecError, match=r"package\.module:factory"):
        resolve_model(":build", num_classes=2, in_channels=1, kwargs={})
