"""The README's Python API examples run as written (read from README.md, so they cannot rot), and
the recipes in configs/ are valid configurations."""

import re
from pathlib import Path

import pytest
import torch

from pareco.config import TrainConfig, read_config_file

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "## Python API",
    "### Train your model on your data: the whole run",
    "### Your own loop: the parts",
)


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = []
    for heading in SECTIONS:
        assert heading in text, f"README lost its section {heading!r}"
        section = text.split(heading + "\n", 1)[1].split("\n#", 1)[0]
        found = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
        assert len(found) == 1, heading
        blocks.append(found[0])
    return blocks


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path, monkeypatch):
    """The block at the top of "## Python API": slim, costs, export, save, load, ONNX."""
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {"__name__": "readme"}
    quick = readme_examples()[0]
    exec(compile(quick, "README.md (Python API)", "exec"), namespace)
    assert (tmp_path / "small" / "model.json").is_file() and (tmp_path / "small.onnx").is_file()
    small, same = namespace["small"], namespace["same"]
    probe = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(same(probe), small.eval()(probe), atol=0, rtol=0)


@pytest.mark.slow
def test_readme_python_api_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {"__name__": "readme"}
    _, whole, own = readme_examples()
    exec(compile(whole, "README.md (whole run)", "exec"), namespace)
    assert (tmp_path / "runs" / "mynet" / "front.json").is_file()
    assert namespace["result"].point["flops_ratio"] <= 0.5 + 1e-6
    exec(compile(own, "README.md (own loop)", "exec"), namespace)
    assert namespace["step"] == 2 * 16 and len(namespace["sampler"].search.history) >= 4
    assert namespace["best"].cost_ratio <= 0.5
    small, net, best = namespace["small"], namespace["net"], namespace["best"]
    probe = torch.randn(4, 3, 16, 16)
    net.eval()
    with torch.no_grad(), net.widths(best.alpha):
        torch.testing.assert_close(small.eval()(probe), net(probe), atol=1e-5, rtol=1e-5)


def test_readme_test_command_is_what_ci_runs():
    """The README's "run the tests" line runs exactly the checks of ``.ci/run`` after setup."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    checks = [line for line in ci[ci.index("scripts/setup.sh") + 1 :] if line.strip()]
    readme = (ROOT / "README.md").read_text()
    assert "scripts/setup.sh && " + " && ".join(checks) + "\n" in readme


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_recipes_are_valid_configs(path):
    config = TrainConfig.from_dict(read_config_file(path))
    if path.name.startswith(("cifar", "imagenet")):  # the paper's settings (DESIGN.md §2)
        assert config.num_sampled == 2 and config.min_multiplier == 0.42
        assert config.label_smoothing == 0.1 and config.method == "pareco"
