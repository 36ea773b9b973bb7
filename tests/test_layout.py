"""The suite's own layout: what tests share lives in `tests/support/`, and no test module imports
another (nor a conftest.py: fixtures reach tests through pytest, not through imports).

Pure AST over the files, nothing is imported: a new import of a test module fails here, with
where it is, before it can tangle the suite again.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SUPPORT = TESTS / "support"
SUPPORT_PACKAGE = "tests.support"
CHECKED = (TESTS, ROOT / "bench")


def python_files() -> Iterator[Path]:
    for directory in CHECKED:
        yield from sorted(directory.rglob("*.py"))


def package_of(path: Path) -> list[str]:
    """The package a module is in, as parts (for an __init__.py, the package it makes)."""
    return list(path.relative_to(ROOT).parent.parts)


def imported_modules(source: str, package: list[str]) -> Iterator[tuple[int, str]]:
    """(line, module) for every module `source`, a module of `package`, imports; relative
    imports made absolute, and `from package import name` counted as `package.name`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"


def is_allowed(module: str) -> bool:
    """Anything but the test suite itself, or its support package."""
    if module != "tests" and not module.startswith("tests."):
        return True
    return module == SUPPORT_PACKAGE or module.startswith(f"{SUPPORT_PACKAGE}.")


def test_only_tests_support_is_imported_from_the_test_suite() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files()
        for line, module in imported_modules(path.read_text(), package_of(path))
        if not is_allowed(module)
    ]

    assert offences == [], "move what is shared to tests/support/:\n" + "\n".join(offences)


def test_outside_tests_support_there_are_only_tests_and_conftests() -> None:
    """A helper module elsewhere could be imported by nobody: it belongs in tests/support/."""
    strays = [
        str(path.relative_to(ROOT))
        for path in TESTS.rglob("*.py")
        if SUPPORT not in path.parents
        and path.name not in ("__init__.py", "conftest.py")
        and not path.name.startswith("test_")
    ]

    assert strays == []


def test_the_check_sees_what_it_must_refuse() -> None:
    """The rule above, on a module written to break it in every way it can be broken."""
    source = "\n".join(
        [
            "import tests.conftest",
            "from tests.delivery.conftest import queue_emails",
            "from tests import test_cli",
            "from .test_pacer import max_in_any_window",
            "from ..control import conftest",
            "from . import fakes",
            "from tests.support.polling import wait_until",
            "from tests import support",
            "from ses_sender.models import Request",
        ]
    )

    refused = [
        module
        for _, module in imported_modules(source, ["tests", "delivery"])
        if not is_allowed(module)
    ]

    assert refused == [
        "tests.conftest",
        "tests.delivery.conftest.queue_emails",
        "tests.test_cli",
        "tests.delivery.test_pacer.max_in_any_window",
        "tests.control.conftest",
        "tests.delivery.fakes",
    ]
    assert package_of(SUPPORT / "__init__.py") == ["tests", "support"]
    assert package_of(SUPPORT / "polling.py") == ["tests", "support"]
