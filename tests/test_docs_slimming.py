"""docs/slimming.md's rule example runs as written (read from the file, so it cannot rot)."""

import re
from pathlib import Path

import pytest
import torch

import pareco
from pareco.slimming import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "slimming.md"


def test_the_registered_rule_example_runs():
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    namespace: dict = {"__name__": "docs_slimming"}
    try:
        exec(compile(code, str(DOC), "exec"), namespace)
        net = namespace["net"]
        assert net.space.dim == 1 and net.space.groups[0].size == 16
        registry._RULES.pop("mylib::channel_scale")
        with pytest.raises(pareco.SlimError, match="mylib::channel_scale at node"):
            pareco.slim(namespace["Net"](), torch.randn(1, 3, 8, 8))
    finally:
        registry._RULES.pop("mylib::channel_scale", None)


def test_the_package_map_names_every_module():
    text = DOC.read_text()
    package = Path(pareco.slimming.__file__).parent
    for path in sorted(package.rglob("*.py")):
        name = str(path.relative_to(package))
        if name != "rules/__init__.py":
            assert f"`{name}`" in text, f"docs/slimming.md does not describe {name}"
