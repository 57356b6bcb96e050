"""The package's import graph: no circles, and every import points down the layers, so each
file can be read knowing only what lies below it."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module may import its own layer and the layers below, never one above.
LAYERS = [
    ("core", ["rnnkit.data", "rnnkit.state", "rnnkit.functional", "rnnkit.regularizers",
              "rnnkit.workspace", "rnnkit.kernels", "rnnkit.normalization", "rnnkit.losses",
              "rnnkit.init", "rnnkit.stats"]),
    ("recurrent", ["rnnkit.cells", "rnnkit.fast_loop", "rnnkit.dispatch", "rnnkit.rnn",
                   "rnnkit.export"]),
    ("model parts", ["rnnkit.heads", "rnnkit.models", "rnnkit.rollout"]),
    ("objectives", ["rnnkit.objectives"]),
    ("trainer", ["rnnkit.train"]),
    ("tasks", ["rnnkit.tasks", "rnnkit.forecasting"]),
    ("command line", ["rnnkit.cli", "rnnkit.__main__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The rnnkit modules a file imports (anywhere in it, relative imports resolved)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("rnnkit")}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "rnnkit").rglob("*.py")}
    # "from rnnkit import x" names the package root only to reach x: the arrow is to x
    return {name: {m for m in imports(path) if m in files and m not in (name, "rnnkit")}
            for name, path in files.items()}


def layer(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_every_module_has_a_layer():
    assert [m for m in graph() if m != "rnnkit" and layer(m) is None] == []


def test_imports_point_down():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets
              if a != "rnnkit" and layer(b) > layer(a)]
    assert upward == []


def test_no_import_circles():
    edges, done, circles = graph(), set(), []

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            circles.append(" -> ".join(path[path.index(node):] + [node]))
            return
        if node in done:
            return
        for nxt in sorted(edges[node]):
            # a package importing its own submodules (re-exports) is not a circle
            if not nxt.startswith(node + "."):
                visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(edges):
        visit(start, [])
    assert circles == []


def test_import_rnnkit_is_cheap():
    """`import rnnkit` loads the modules, not the command line, the trainer or matplotlib
    (tqdm is not checked: torch itself imports it)."""
    code = ("import sys, rnnkit; print(sorted(m for m in sys.modules if m.startswith("
            "('rnnkit.cli', 'rnnkit.train', 'rnnkit.tasks', 'matplotlib', 'yaml'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
