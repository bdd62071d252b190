"""Plugins: modules that extend pareco (cost metrics, datasets, slimming rules) when imported.

A plugin is any importable module whose import calls :func:`pareco.register_cost_metric`,
:func:`pareco.data.register_dataset` or :func:`pareco.register_rule`. pareco imports:

- the modules a run names in its ``plugins:`` config key (``pareco train --plugins mymod``); the
  run's ``config.json`` keeps the list, so ``--resume``, ``pareco front`` and ``pareco export``
  import them again;
- the modules named in the ``PARECO_PLUGINS`` environment variable (comma-separated);
- every entry point of installed packages in the ``pareco.plugins`` group
  (``[project.entry-points."pareco.plugins"] mine = "mypkg.pareco_ext"``).

Each module is imported once per process; the current directory is searched after
``sys.path``, as for ``--model mymodels:build``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from pareco.errors import ParecoError, first_line

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "PluginError",
    "load_environment",
    "load_plugins",
    "load_run_plugins",
]

ENTRY_POINT_GROUP = "pareco.plugins"
ENV_VAR = "PARECO_PLUGINS"

_loaded_environment = False


class PluginError(ParecoError, ImportError):
    """A plugin module that does not import; the message says which and why (one line)."""


def import_module(name: str) -> ModuleType:
    """Import ``name``; a top-level module missing from ``sys.path`` is looked for in the
    current directory too."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        if err.name != name.split(".")[0] or cwd in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(name)


def load_plugins(names: Iterable[str], *, source: str = "plugins") -> list[ModuleType]:
    """Import each module in ``names`` (already imported ones are not run again).

    Raises:
        PluginError: a module that fails to import, named with ``source`` (where it was listed).
    """
    modules = []
    for name in names:
        name = str(name).strip()
        if not name:
            continue
        try:
            modules.append(import_module(name))
        except Exception as err:  # the user's code: any failure becomes one line
            raise PluginError(
                f"{source}: cannot import plugin {name!r} ({type(err).__name__}: "
                f"{first_line(err)}); check the module name and that its folder is on PYTHONPATH"
            ) from None
    return modules


def load_environment() -> None:
    """Import ``PARECO_PLUGINS`` and the ``pareco.plugins`` entry points, once per process."""
    global _loaded_environment
    if _loaded_environment:
        return
    load_plugins(os.environ.get(ENV_VAR, "").split(","), source=ENV_VAR)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:
            raise PluginError(
                f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r} does not "
                f"load ({type(err).__name__}: {first_line(err)}); fix or uninstall its package"
            ) from None
    _loaded_environment = True  # only once everything loaded: a failure is reported every time


def load_run_plugins(run_dir: str | Path) -> list[ModuleType]:
    """Import the plugins a run names in its ``config.json`` (and the environment's), so its
    metrics and datasets are known before a command reads its front.

    A folder without a readable ``config.json`` imports nothing here: the command that opens the
    run says what is wrong with it.
    """
    load_environment()
    try:
        names = json.loads((Path(run_dir) / "config.json").read_text()).get("plugins") or []
    except (OSError, ValueError, AttributeError):
        return []
    if isinstance(names, str):
        names = [names]
    return load_plugins(names, source=f"{run_dir}/config.json plugins")
