"""Unit tests of the benchmark's own bookkeeping (pure logic): which probe rounds count as steady."""

from __future__ import annotations

from benchmarks.registry import settle_index


def _rounds(*owned: int) -> list[dict]:
    return [{"owned": n, "seconds": 1.0} for n in owned]


def test_one_replica_settles_in_its_first_round() -> None:
    assert settle_index(_rounds(10_000, 10_000, 10_000)) == 0


def test_a_replica_that_gave_shards_away_settles_in_its_first_round_over_its_share() -> None:
    assert settle_index(_rounds(10_000, 4_966, 4_966)) == 1


def test_a_replica_that_joined_with_one_shard_settles_when_it_probes_its_full_share() -> None:
    """Its round over 630 clusters is not its first full round: the 5,034 of its share came later."""
    assert settle_index(_rounds(630, 5_034, 5_034, 5_034)) == 1
