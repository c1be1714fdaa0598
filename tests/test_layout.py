"""The package's layers: imports run downward only, and no module imports itself in a circle.

Every ``import pixloom.x`` / ``from pixloom.x import y`` in every module counts, including the ones
inside functions: a lazy import is still an arrow between layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pixloom

ROOT = Path(pixloom.__file__).resolve().parent

# layer -> the layers it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "io": {"errors"},
    "nn": {"errors", "io"},
    "data": {"errors", "io"},
    "viz": {"errors", "io"},
    "metrics": {"errors", "io", "data"},
    "models": {"errors", "io", "nn", "data", "version"},
    "training": {"errors", "io", "viz"},
    "tasks": {"errors", "io", "nn", "data", "viz", "metrics", "models", "training", "version"},
    "serve": {"errors", "tasks", "version"},
    "cli": {"errors", "tasks", "serve"},
    "package": {"errors", "tasks", "models", "data", "cli", "version"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] == "__main__":
        return "package"
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The pixloom modules a file imports (anywhere in it)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "pixloom"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "pixloom":
            found.add(node.module)
            for alias in node.names:  # `from pixloom.x import y` may name a submodule y
                candidate = f"{node.module}.{alias.name}"
                if (ROOT.parent / Path(*candidate.split("."))).with_suffix(".py").is_file() or \
                        (ROOT.parent / Path(*candidate.split("."))).is_dir():
                    found.add(candidate)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def test_imports_run_downward_only():
    upward = []
    for source, targets in graph().items():
        for target in targets:
            src, dst = layer_of(source), layer_of(target)
            if dst == "__version__":
                continue
            if src != dst and dst not in ALLOWED[src] and not (src == "package" and target == "pixloom"):
                upward.append(f"{source} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    edges = graph()
    # A module's package __init__ is imported whenever the module is; an __init__ that re-exports its
    # own submodules is not a circle of the design, so arrows from a package to its children are dropped.
    for source in edges:
        edges[source] = {t for t in edges[source] if not t.startswith(source + ".")}
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_command_line_holds_no_model_or_data_logic():
    imported = imports_of(ROOT / "cli.py")
    assert imported and all(m == "pixloom.errors" or m.startswith(("pixloom.tasks", "pixloom.serve"))
                            for m in imported), imported
    text = (ROOT / "cli.py").read_text()
    for word in ("import torch", "hasattr(", "load_pretrained", "load_dataset", "from_pretrained"):
        assert word not in text, word


def test_no_capability_is_probed_with_hasattr():
    offenders = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr" and len(node.args) == 2:
                what = node.args[1]
                if isinstance(what, ast.Constant) and what.value in (
                        "sample", "complete", "reconstruct", "interpolate", "canvas_steps", "caption", "upscale",
                        "log_prob", "nll", "loss", "after_training", "validation_scores", "encode", "decode"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} hasattr(..., {what.value!r})")
    assert not offenders, offenders
