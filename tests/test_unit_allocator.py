"""The allocator settings of workers and the prober (utils.allocator): pure process-level logic."""

from __future__ import annotations

import pytest

from utils import allocator


def test_glibc_takes_the_settings() -> None:
    assert allocator.tune() is True  # the service's images and CI run on glibc (Debian)


@pytest.mark.parametrize("variable", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"])
def test_an_operators_environment_wins(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "4")
    assert allocator.tune() is False
