"""The import layers of roastcore: acyclic, and no module imports from a layer above its own.

Every `import roastcore.x` / `from roastcore.x import ...` counts, including those inside
functions. A function-level import must carry a comment on its line or the line above saying
why (start-up time); the list below is the order docs/architecture.md draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "roastcore"

# Bottom to top. A module may import its own layer (if that stays acyclic) or any layer below.
LAYERS: list[tuple[str, ...]] = [
    ("roastcore", "fsutil", "profile", "threads", "liveness", "run_scores", "run_generated"),
    ("physics", "simulate", "io", "io.*"),
    ("features", "baselines", "splits", "batch"),
    ("prior", "metrics", "forecast_bands"),
    ("dataset",),
    ("model", "roastformer_v1", "architectures"),
    ("experiments",),
    ("checkpoints",),
    ("generate", "train"),
    ("diagnose",),
    ("evaluate", "predict"),
    ("forecast", "forecast_methods", "forecast_model", "forecast_residual", "forecast_eval", "forecast_train"),
    ("study", "plotting", "score_charts", "sweep_charts", "inspect_run", "roastformer_import"),
    ("jobs", "jobs.*", "cli", "cli.*", "__main__"),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts) if parts else "roastcore"


def layer_of(name: str) -> int:
    for rank, members in enumerate(LAYERS):
        for m in members:
            if name == m or (m.endswith(".*") and name.startswith(m[:-1])):
                return rank
    raise KeyError(name)


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str | None:
    if node.level:  # relative import
        base = current.split(".") if is_package else current.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
        return target or "roastcore"
    return node.module


def imports_of(path: Path, known: set[str] | None = None) -> list[tuple[str, int, bool]]:
    """(imported roastcore module, line, at function level) for every import in `path`;
    `known`: the package's module names (listed once per graph, not once per file)."""
    current = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = known if known is not None else {module_name(p) for p in ROOT.rglob("*.py")}
    found = []

    def visit(node, nested: bool):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                mod = _resolve(child, current if current != "roastcore" else "roastcore", is_package)
                if mod:
                    # `from roastcore import io` names a submodule; `from roastcore.x import f` a name.
                    subs = [f"{mod}.{a.name}" for a in child.names if f"{mod}.{a.name}".removeprefix("roastcore.") in known]
                    targets = subs or [mod]
            for t in targets:
                if t == "roastcore" or t.startswith("roastcore."):
                    name = t.removeprefix("roastcore.") if t != "roastcore" else "roastcore"
                    while name not in known and "." in name:
                        name = name.rsplit(".", 1)[0]
                    found.append((name, child.lineno, nested))
            visit(child, inner)

    visit(tree, False)
    return found


def _explained(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or on the line above its block of imports."""
    if "#" in lines[lineno - 1]:
        return True
    i = lineno - 2
    while i >= 0:
        text = lines[i].strip()
        if text.startswith(("from ", "import ")) or text == ")" or text.endswith((",", "(")):
            i -= 1
            continue
        return text.startswith("#")
    return False


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int]]]:
    """(edges module -> imported modules, function-level imports without a reason comment)."""
    edges: dict[str, set[str]] = {}
    unexplained = []
    paths = sorted(ROOT.rglob("*.py"))
    known = {module_name(p) for p in paths}
    for path in paths:
        name = module_name(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        edges.setdefault(name, set())
        for target, lineno, nested in imports_of(path, known):
            if target != name:
                edges[name].add(target)
            if nested and not _explained(lines, lineno):
                unexplained.append((f"{name}:{lineno}", lines[lineno - 1].strip()))
    return edges, unexplained


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Upward edges, plus modules the layer list does not place."""
    problems = []
    for src, targets in sorted(edges.items()):
        try:
            src_rank = layer_of(src)
        except KeyError:
            problems.append(f"{src}: not in any layer of tests/test_layers.py")
            continue
        for dst in sorted(targets):
            if dst == "roastcore":  # the package itself (its version string)
                continue
            try:
                dst_rank = layer_of(dst)
            except KeyError:
                problems.append(f"{dst}: not in any layer of tests/test_layers.py")
                continue
            if dst_rank > src_rank:
                problems.append(f"{src} (layer {src_rank}) imports {dst} (layer {dst_rank}): an upward edge")
    return problems


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph():
    """The real tree's graph, parsed once for the tests that only read it."""
    return import_graph()


def test_roastcore_layers_are_acyclic_and_point_down(graph):
    edges = graph[0]
    assert "dataset" in edges["model"] and "model" in edges["train"]  # the walker sees the tree
    assert layer_violations(edges) == []
    assert find_cycle(edges) is None


def test_function_level_imports_say_why(graph):
    unexplained = graph[1]
    assert unexplained == []


def test_the_check_catches_an_upward_import(graph):
    edges = dict(graph[0])
    edges["profile"] = edges["profile"] | {"model"}
    assert any("profile (layer 0) imports model" in p for p in layer_violations(edges))


def test_the_check_catches_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]


def test_function_level_imports_are_seen(tmp_path, monkeypatch):
    pkg = tmp_path / "roastcore"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "profile.py").write_text("def f():\n    from roastcore.model import build_model\n")
    (pkg / "model.py").write_text("from roastcore import profile\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg)
    edges, unexplained = import_graph()
    assert edges["profile"] == {"model"} and edges["model"] == {"profile"}
    assert unexplained == [("profile:2", "from roastcore.model import build_model")]
    assert find_cycle(edges) is not None
    assert layer_violations(edges) == ["profile (layer 0) imports model (layer 5): an upward edge"]


@pytest.mark.parametrize("name", ["io.alog", "cli.train", "jobs.store"])
def test_subpackages_have_a_layer(name):
    assert layer_of(name) >= 0

