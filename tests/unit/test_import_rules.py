"""The layout is the map: imports run one way, and nothing imports in a circle.

``alliance_core`` is built in layers, lowest first; a module may import its own layer and the
layers below it, never one above (so the model never reads its words or its figures):

    base (errors, formatting) → data → model → wording → analyses → figures → teaching → handover

``bench`` and the package's ``__init__`` (the public verbs) sit on top. The dashboard's pages
may import anything of the engine; the shared plumbing in ``pages/_ui`` never imports a page
script. In both trees no module imports another in a circle (type-only imports included), and
no function imports a project module at call time (the usual way to hide a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS = (
    ("errors", "formatting"),
    ("data",),
    ("model",),
    ("wording",),
    ("analyses",),
    ("figures",),
    ("teaching",),
    ("handover",),
    ("bench", "__init__"),
)
LAYER_OF = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    paths = [
        *sorted((ROOT / "alliance_core").rglob("*.py")),
        *sorted((ROOT / "pages").rglob("*.py")),
    ]
    return {module_name(p): p for p in paths}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` refers to (a module, or the package holding a name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(
    path: Path, modules: dict[str, Path], source: str | None = None
) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function?) for every import in ``path``
    (or in ``source``, read as if it were the text of ``path``)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    here = module_name(path)
    package = here if _is_package(path) else here.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _resolve(alias.name, modules)
                    if target:
                        found.append((target, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in child.names:
                    candidate = f"{base}.{alias.name}" if base else alias.name
                    target = modules.get(candidate) and candidate or _resolve(base, modules)
                    if target:
                        found.append((target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in imports_of(path, modules):
            # A package's __init__ runs before its submodules; the edge that matters is to the
            # module actually named, and a package re-exporting its own modules is no circle.
            if target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "alliance_core":
        return None
    return LAYER_OF["__init__" if len(parts) == 1 else parts[1]]


def layer_violations() -> list[str]:
    modules = project_modules()
    problems = []
    for name, path in modules.items():
        own = layer(name)
        if own is None:
            continue
        for target, line, _ in imports_of(path, modules):
            theirs = layer(target)
            if theirs is not None and theirs > own:
                problems.append(
                    f"{path.relative_to(ROOT)}:{line} imports {target} (a higher layer)"
                )
    return problems


def test_every_part_of_alliance_core_has_a_layer():
    parts = {p.name for p in (ROOT / "alliance_core").iterdir() if p.suffix == ".py" or p.is_dir()}
    parts = {p.removesuffix(".py") for p in parts if not p.startswith("__pycache__")}
    assert parts - set(LAYER_OF) == set()


def test_no_import_circle_in_the_engine_or_the_pages():
    assert cycles(import_graph()) == []


def test_imports_run_from_the_outer_layers_to_the_model_never_back():
    assert layer_violations() == []


def test_no_function_imports_a_project_module():
    modules = project_modules()
    late = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in modules.values()
        for target, line, in_function in imports_of(path, modules)
        if in_function
    ]
    assert late == []


def test_the_plumbing_never_imports_a_page():
    graph = import_graph()
    pages = {name for name in graph if name.startswith("pages.") and not name.startswith("pages._")}
    plumbing = {name for name in graph if name.startswith("pages._")}
    assert [(m, t) for m in plumbing for t in graph[m] if t in pages] == []


# -- the checks can fail ---------------------------------------------------------------------
def test_cycle_finder_finds_a_circle_and_only_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from alliance_core.model.results import MetaResult\n",
            [("alliance_core.model.results", False)],
        ),
        (
            "def f():\n    from alliance_core.figures import forest\n",
            [("alliance_core.figures.forest", True)],
        ),
        ("from ..model import fitting\n", [("alliance_core.model.fitting", False)]),
        ("import numpy\n", []),
    ],
)
def test_imports_are_read_with_their_place(source, expected):
    modules = project_modules()
    probe = ROOT / "alliance_core" / "analyses" / "probe.py"  # read as if it lay there
    assert [(t, f) for t, _, f in imports_of(probe, modules, source)] == expected


def test_layer_rule_names_an_upward_import():
    assert layer("alliance_core.model.results") < layer("alliance_core.figures.forest")
    assert layer("alliance_core.handover.report") > layer("alliance_core.analyses.bias")
    assert layer("pages._ui.render") is None
