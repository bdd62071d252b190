"""``pareco.run``: a run read back from its directory; the errors of a folder that is not one."""

import pytest
import torch
from test_train import tiny

from pareco.checkpoint import save_checkpoint
from pareco.config import write_config
from pareco.errors import RunError
from pareco.run import load_run
from pareco.trainer import Trainer


def test_load_run_rebuilds_data_and_trained_weights(tmp_path):
    trainer = Trainer(tiny(tmp_path, method="slim", epochs=1), progress=False)
    trainer.fit()
    run = load_run(tmp_path / "run")
    assert run.finished and run.config.method == "slim" and not run.net.training
    loaded = dict(run.net.named_parameters())  # BN statistics: recalibrated by the final eval
    for k, v in trainer.net.named_parameters():
        assert torch.equal(v, loaded[k]), k
    recal = run.recalibration()
    assert len(recal) == run.config.recal_batches
    assert torch.equal(recal[0], trainer.batches.recal[0])  # the batches training used


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    with pytest.raises(RunError, match="is not a pareco run directory"):
        load_run(tmp_path)
    write_config(tiny(tmp_path), tmp_path / "config.json")
    with pytest.raises(RunError, match="holds no checkpoint"):
        load_run(tmp_path)


def test_a_loaders_run_needs_its_sources_in_a_new_process(tmp_path):
    config = tiny(tmp_path, data="loaders")
    write_config(config, tmp_path / "config.json")
    save_checkpoint({"step": 0, "model": {}}, tmp_path)
    with pytest.raises(RunError, match=r"call pareco.run.register_run_sources\(run_dir"):
        load_run(tmp_path)
