"""Imports go one way: each package imports only from the layers below it (or its own), so `cluster/` (the
driver, run and CLI) stays the top and shared helpers live in `common/`. Lazy imports inside functions
count too. A package's `cli.py` is an entry point (reached only through `conrec`, by name) and may compose
the layers above it; nothing may import it."""

import ast

from tests.conftest import ROOT

LAYER = {"common": 0, "feedback": 1, "sid": 2, "rollout": 3, "reward": 3, "trainer": 4, "evaluation": 5,
         "cluster": 6, "bench": 7}


def imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name.split(".")[0]


def test_no_upward_imports():
    bad = []
    for pkg, rank in LAYER.items():
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for line, mod in imports(f):
                if f.name == "cli.py" and pkg != "cluster":
                    continue
                if mod in LAYER and mod != pkg and LAYER[mod] >= rank:
                    bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod} (layer {LAYER[mod]} ≥ {pkg}'s {rank})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_nothing_imports_a_cli_module():
    users = [f"{f.relative_to(ROOT)}:{node.lineno}" for pkg in LAYER for f in sorted((ROOT / pkg).rglob("*.py"))
             for node in ast.walk(ast.parse(f.read_text()))
             if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(".cli")]
    assert not users, users



def test_registries_refuse_a_second_object_under_one_name():
    import pytest

    from common.registry import registrar

    table = {}
    register = registrar(table, "reward")
    register("hit")(len)
    register("hit")(len)  # the same object again (a re-import): fine
    with pytest.raises(ValueError, match="reward 'hit' is already registered"):
        register("hit")(max)
