"""Shared fixtures: the reference data in ../shared (skipped, saying why, where absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# $TUNEBENCH_SHARED points elsewhere when the checkout is not beside ../shared (a git worktree).
SHARED_DATA = Path(os.environ.get("TUNEBENCH_SHARED") or PROJECT_ROOT.parent / "shared") / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (CI provides ../shared beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current renderer instead of comparing")


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files that train with Axolotl (marker axolotl, a minute each) first, each file's tests in their order.

    `make test`'s two xdist workers take whole files in this order, so the long ones start at once and
    the many short files fill in beside them, instead of one long file running alone at the end.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("axolotl")}
    items.sort(key=lambda item: item.path not in slow_files)
