"""The package's layout: the core (config, data, models, engine, runner, evaluation, inference) never imports a
command from trainlab.tools, and no two modules import each other, at module level or inside a function (an import
put in a function to break a cycle hides two modules that are one idea, or a function in the wrong one)."""

import ast
from pathlib import Path

import trainlab

PACKAGE = Path(trainlab.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("trainlab", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        found[name] = path
    return found


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The trainlab modules a file imports, anywhere (imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainlab"):
            # `from trainlab.data import vision` imports the module trainlab.data.vision, not only the package
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(known)
            names |= submodules or {node.module}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("trainlab")}
    return names & set(known)


def test_the_core_imports_no_tool():
    known = modules()
    front_ends = ("trainlab.tools", "trainlab.cli", "trainlab.api")  # the command line and the Python API sit on the core
    core = [name for name in known if not name.startswith(front_ends)]
    offenders = {name: sorted(t for t in imported(known[name], known) if t.startswith("trainlab.tools"))
                 for name in core}  # fmt: skip
    assert {name: tools for name, tools in offenders.items() if tools} == {}


def test_no_two_modules_import_each_other_not_even_inside_a_function():
    known = modules()
    graph = {name: imported(path, known) - {name} for name, path in known.items()}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for target in graph[name]:
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []
