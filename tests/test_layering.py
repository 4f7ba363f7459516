"""The house is layered: every layer imports only the layers below it, and no experiment imports
another experiment.

    models, analysis  ->  circuits  ->  transformer  ->  runs  ->  experiments  ->  benchmarks

(README "Layout"; ``models`` and ``analysis`` form one layer and may use each other.) A module of
``models/``, ``analysis/``, ``circuits/``, ``transformer/`` or ``runs/`` that imports a package of a
higher layer is an upward arrow. Within ``experiments/``, an *experiment* is a module with a
``main`` function or an ``if __name__ == "__main__"`` block: a thin command line that composes the
API. Experiments may import the shared helpers beside them (modules without ``main``: ``cli``,
``plotting``, ``paper_common``, ``head_run``), never another experiment, and a helper imports no
experiment (or it would carry one experiment into another).

Imports are read with ``ast`` from the source, wherever they stand (module level, inside functions,
under ``if``): ``import a.b``, ``from a import b`` (``b`` counts as the module ``a.b`` where that is
a module), relative imports, and imports by name: a string or f-string passed to
``importlib.import_module``, ``__import__``, ``importlib.util.find_spec`` or ``runpy.run_module``,
and, in a module that calls one of these, any string that starts with a package name and a dot
(``f"experiments.{name}"`` assigned first and imported later).
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The layers, lowest first; packages in one tuple share a layer.
LAYERS = (("models", "analysis"), ("circuits",), ("transformer",), ("runs",), ("experiments",), ("benchmarks",))
RANK = {package: rank for rank, group in enumerate(LAYERS) for package in group}

#: Modules that load an experiment by a name known only at run time, and why (a name chosen on the
#: command line is not one experiment importing another).
LOADS_EXPERIMENTS_BY_NAME = {
    "experiments.sweep": "the sweep's command line runs the experiment named on it",
}

#: Calls that import the module named by their first argument.
IMPORT_CALLS = {"import_module", "__import__", "find_spec", "run_module"}

ANY = "*"     # the target module of an import by a name known only at run time


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _string_head(node) -> tuple[str, bool] | None:
    """The constant text a string expression starts with and whether that is all of it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, True
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value, len(node.values) == 1
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        head = _string_head(node.left)
        return None if head is None else (head[0], False)
    return None


def _named_target(text: str, complete: bool, direct: bool) -> str | None:
    """The module a string names: ``a.b`` when it is all of the string, ``a.b.*`` (any module of
    ``a.b``) for ``a.b.`` plus a part known at run time, ``a.*`` for another start; None for no
    package of the house. A string that is not itself imported must name a module in a package
    (``a.`` at least)."""
    match = re.fullmatch(r"([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)(\.?)", text)
    if match is None or match.group(1) not in RANK or not (direct or match.group(2) or match.group(3)):
        return None
    if complete and not match.group(3):
        return match.group(1) + match.group(2)
    return match.group(1) + match.group(2) + "." + ANY if match.group(3) else match.group(1) + "." + ANY


def _docstrings(tree) -> set:
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                nodes.add(id(first.value))
    return nodes


def imports_of(path: Path, root: Path) -> list:
    """(line, target module, how) of every import of ``path``; a target ``pkg.*`` is any module
    of ``pkg`` (imported by a name known only at run time)."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "import") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*anchor, base]))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub, root) else base, "from-import"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _call_name(node) in IMPORT_CALLS]
    direct = {id(call.args[0]) for call in calls if call.args}
    inner = {id(child) for node in ast.walk(tree) if isinstance(node, (ast.JoinedStr, ast.BinOp))
             for child in ast.walk(node) if child is not node}
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if id(node) in inner or id(node) in docstrings or not (id(node) in direct or calls):
            continue
        head = _string_head(node)
        if head is not None and (target := _named_target(*head, id(node) in direct)) is not None:
            found.append((node.lineno, target, "by name"))
    return list(dict.fromkeys(found))


def is_experiment(path: Path) -> bool:
    """A module with a top-level ``main`` or an ``if __name__ == "__main__"`` block."""
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            return True
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            return True
    return False


def violations(root: Path) -> list:
    """Every upward import and every experiment-to-experiment import under ``root``, one line each."""
    experiments = {module_name(p, root) for p in (root / "experiments").glob("*.py") if is_experiment(p)}
    found = []
    for package, rank in RANK.items():
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            where = f"{path.relative_to(root)}"
            for line, target, how in imports_of(path, root):
                top = target.split(".")[0]
                if top not in RANK:
                    continue
                if RANK[top] > rank:
                    found.append(f"{where}:{line}: {name} imports {target} ({how}), a layer above {package}")
                elif package == "experiments" and top == "experiments" and target != name:
                    if target == f"experiments.{ANY}" and name in LOADS_EXPERIMENTS_BY_NAME:
                        continue
                    if target in experiments or target.endswith(ANY):
                        kind = "experiment" if name in experiments else "helper module"
                        found.append(f"{where}:{line}: {kind} {name} imports the experiment {target} ({how})")
    return found


def test_no_import_runs_up_a_layer_and_no_experiment_imports_another():
    found = violations(ROOT)
    assert not found, "layering broken (README \"Layout\"):\n" + "\n".join(found)


def test_experiments_and_helpers_are_told_apart():
    experiments_dir = ROOT / "experiments"
    for helper in ("cli", "plotting", "paper_common", "head_run"):
        assert not is_experiment(experiments_dir / f"{helper}.py"), helper
    for experiment in ("attention", "real_head", "real_head_table", "astrocyte_response", "astrocyte_models"):
        assert is_experiment(experiments_dir / f"{experiment}.py"), experiment


# ----------------------------------------------------------------- the checker on a made-up house


def _house(tmp_path, files: dict) -> Path:
    for package in RANK:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for relative, text in files.items():
        (tmp_path / relative).write_text(text)
    return tmp_path


MAIN = "\ndef main(argv=None):\n    pass\n"


@pytest.mark.parametrize("files, expected", [
    ({"circuits/a.py": "from models import parameters\nimport analysis.attention\n"}, []),
    ({"circuits/a.py": "def f():\n    from runs.folders import write_json\n"}, ["circuits/a.py:2"]),
    ({"models/a.py": "from circuits.head import run_head\n"}, ["models/a.py:1"]),
    ({"analysis/a.py": "import transformer\n"}, ["analysis/a.py:1"]),
    ({"runs/a.py": "if True:\n    from experiments import attention\n"}, ["runs/a.py:2"]),
    ({"runs/a.py": "import importlib\nm = importlib.import_module('experiments.attention')\n"}, ["runs/a.py:2"]),
    ({"runs/a.py": "import importlib\nname = f'experiments.{x}'\nimportlib.import_module(name)\n"},
     ["runs/a.py:2"]),
    ({"runs/a.py": "import importlib\nimportlib.import_module('benchmarks' + '.x')\n"}, ["runs/a.py:2"]),
    ({"transformer/a.py": "from ..runs import folders\n"}, ["transformer/a.py:1"]),
    ({"runs/a.py": '"""Used by experiments.attention."""\nHELP = "see experiments.attention"\n'}, []),
    ({"experiments/one.py": MAIN, "experiments/two.py": "from experiments import one\n" + MAIN},
     ["experiments/two.py:1"]),
    ({"experiments/one.py": "if __name__ == '__main__':\n    pass\n",
      "experiments/two.py": "def f():\n    from experiments.one import g\n" + MAIN}, ["experiments/two.py:2"]),
    ({"experiments/one.py": MAIN, "experiments/helper.py": "from . import one\n"}, ["experiments/helper.py:1"]),
    ({"experiments/helper.py": "X = 1\n", "experiments/one.py": "from experiments import helper\n" + MAIN}, []),
    ({"experiments/one.py": "import importlib\nimportlib.import_module(f'experiments.{n}')\n" + MAIN},
     ["experiments/one.py:2"]),
    ({"experiments/one.py": MAIN, "benchmarks/b.py": "from experiments.one import main\n"}, []),
])
def test_the_checker_finds_upward_and_sideways_imports(tmp_path, files, expected):
    root = _house(tmp_path, files)
    assert [v.split(": ")[0] for v in violations(root)] == expected
