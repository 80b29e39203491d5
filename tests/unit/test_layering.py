"""The import layering of plots/ and widgets/ (ARCHITECTURE.md, "Contracts"), read from the source with `ast`:
plots never import ipywidgets, widgets or methods; inside plots/ and inside widgets/ a module imports no sibling
but `shared`."""

import ast
from pathlib import Path

import pytest

import sparsity_lab

PACKAGE = Path(sparsity_lab.__file__).parent
LAYERS = ("sparsity_lab.plots", "sparsity_lab.widgets")
PLOTS_NEVER_IMPORT = ("ipywidgets", "sparsity_lab.widgets", "sparsity_lab.methods")


def imported(source: str, module: str, is_package: bool = False) -> list[tuple[int, list[str]]]:
    """(line, absolute module names) of each import in `source`, the source of `module` (a package's __init__
    when `is_package`): `import a, b` gives one entry per name; `from X import a, b` one entry naming X, X.a and
    X.b, since a and b may be submodules."""
    here = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = here.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            base = ".".join(filter(None, (base, node.module)))
            found.append((node.lineno, [base, *(f"{base}.{alias.name}" for alias in node.names)]))
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rule_broken(name: str, layer: str) -> str | None:
    if layer == "sparsity_lab.plots" and any(_within(name, banned) for banned in PLOTS_NEVER_IMPORT):
        return "plots never import ipywidgets, widgets or methods"
    if name.startswith(layer + ".") and name.split(".")[2] != "shared":
        return f"a {layer.split('.')[1]} module imports no sibling but {layer}.shared"
    return None


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Each import statement of `module` (in sparsity_lab.plots or sparsity_lab.widgets) that breaks the
    layering, as "module, line n: imports name (the rule)"."""
    layer = next(layer for layer in LAYERS if _within(module, layer))
    out = []
    for line, names in imported(source, module, is_package):
        broken = [(name, rule) for name in names if (rule := _rule_broken(name, layer))]
        if broken:
            name, rule = broken[0]
            out.append(f"{module}, line {line}: imports {name} ({rule})")
    return out


def modules() -> list[tuple[Path, str]]:
    found = []
    for layer in LAYERS:
        for path in sorted((PACKAGE / layer.split(".")[1]).glob("*.py")):
            found.append((path, layer if path.stem == "__init__" else f"{layer}.{path.stem}"))
    return found


def test_every_module_of_plots_and_widgets_keeps_the_layering():
    names = [module for _, module in modules()]
    assert {"sparsity_lab.plots.shared", "sparsity_lab.widgets.shared"} <= set(names), names
    broken = [v for path, module in modules()
              for v in violations(path.read_text(), module, path.stem == "__init__")]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("module, source, expected", [
    ("sparsity_lab.plots.lottery", "import ipywidgets as W\n", ["line 1: imports ipywidgets (plots never"]),
    ("sparsity_lab.plots.lottery", "import numpy\nfrom ipywidgets.widgets import HTML\n",
     ["line 2: imports ipywidgets.widgets (plots never"]),
    ("sparsity_lab.plots.lottery", "from ..methods.obs import obs_update\n",
     ["imports sparsity_lab.methods.obs (plots never"]),
    ("sparsity_lab.plots.lottery", "from .. import methods\n", ["imports sparsity_lab.methods (plots never"]),
    ("sparsity_lab.plots.lottery", "from sparsity_lab.methods import obs\n",
     ["imports sparsity_lab.methods (plots never"]),
    ("sparsity_lab.plots.lottery", "from ..widgets.shared import View\n",
     ["imports sparsity_lab.widgets.shared (plots never"]),
    ("sparsity_lab.plots.lottery", "from .group_lasso import pareto\n",
     ["imports sparsity_lab.plots.group_lasso (a plots module imports no sibling"]),
    ("sparsity_lab.plots.lottery", "from . import sgmcmc\n",
     ["imports sparsity_lab.plots.sgmcmc (a plots module"]),
    ("sparsity_lab.widgets.sgmcmc", "import sparsity_lab.widgets.magnitude\n",
     ["sparsity_lab.widgets.sgmcmc, line 1: imports sparsity_lab.widgets.magnitude (a widgets module"]),
    ("sparsity_lab.widgets.sgmcmc", "from .second_order import SaliencyExplorer\n",
     ["imports sparsity_lab.widgets.second_order (a widgets module"]),
])
def test_a_bad_import_is_named_with_its_module_and_line(module, source, expected):
    found = violations(source, module)
    assert len(found) == len(expected), found
    for message, part in zip(found, expected, strict=True):
        assert message.startswith(module + ", line ") and part in message, message


def test_what_the_layering_allows():
    plots = ("from __future__ import annotations\nimport numpy as np\nimport plotly.graph_objects as go\n"
             "from typing import TYPE_CHECKING\nfrom .shared import COLOURS, style\nfrom . import shared\n"
             "if TYPE_CHECKING:\n    from ..toy import Grid\n")
    assert violations(plots, "sparsity_lab.plots.sgmcmc") == []
    widgets = ("import ipywidgets as W\nfrom .. import cost\nfrom ..methods.obs import two_weight_removals\n"
               "from ..plots.second_order import quadratic_bowl\nfrom ..plots.shared import receptive_fields\n"
               "from .shared import View\n")
    assert violations(widgets, "sparsity_lab.widgets.second_order") == []
    assert violations("from . import shared\n", "sparsity_lab.plots", is_package=True) == []
    assert violations("from .second_order import quadratic_bowl\n", "sparsity_lab.plots", is_package=True) != []
