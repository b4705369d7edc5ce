"""Shards of the probing (pure logic): a cluster's shard, the fair share, and what a replica releases or takes."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from utils.shards import fair_share, member_lease_name, plan, shard_of


def test_a_clusters_shard_is_a_stable_hash_of_its_id() -> None:
    assert shard_of("prod-eu-1", 16) == int.from_bytes(hashlib.sha256(b"prod-eu-1").digest()[:8]) % 16
    assert shard_of("prod-eu-1", 16) == shard_of("prod-eu-1", 16)
    assert {shard_of(f"c-{i}", 7) for i in range(1000)} == set(range(7))
    assert shard_of("anything", 1) == 0


def test_clusters_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of(f"cluster-{i:05d}", 16) for i in range(10_000))
    assert max(counts.values()) < 10_000 / 16 * 1.15 and min(counts.values()) > 10_000 / 16 * 0.85


@pytest.mark.parametrize(("shards", "alive", "share"), [(16, 1, 16), (16, 2, 8), (16, 3, 6), (8, 3, 3), (4, 5, 1),
                                                        (16, 0, 16)])  # fmt: skip
def test_the_fair_share_is_the_ceiling_of_shards_over_replicas(shards: int, alive: int, share: int) -> None:
    assert fair_share(shards, alive) == share


def test_a_lone_replica_takes_every_free_shard() -> None:
    release, acquire = plan("a", [""] * 16, {"a"})
    assert release == [] and sorted(acquire) == list(range(16))


def test_a_replica_over_its_share_releases_only_what_a_joining_one_can_take() -> None:
    release, acquire = plan("a", ["a"] * 16, {"a", "b"})
    assert len(release) == 8 and acquire == []
    release, acquire = plan("b", [""] * 8 + ["a"] * 8, {"a", "b"})
    assert release == [] and sorted(acquire) == list(range(8))


def test_a_dead_replica_still_counted_does_not_make_the_others_give_it_shards() -> None:
    # c died: its member Lease and shards are still live for a lease duration; b has just joined.
    holders = ["a"] * 8 + ["c"] * 8
    release, acquire = plan("a", holders, {"a", "b", "c"})
    assert len(release) == 3 and acquire == []  # down to floor(16 / 3) = 5, for b
    release, acquire = plan("b", [""] * 3 + ["a"] * 5 + ["c"] * 8, {"a", "b", "c"})
    assert release == [] and sorted(acquire) == [0, 1, 2]


def test_a_replica_within_its_share_keeps_what_it_holds() -> None:
    holders = ["a"] * 6 + ["b"] * 5 + ["c"] * 5  # ceil and floor of 16 / 3
    for me in "abc":
        assert plan(me, holders, {"a", "b", "c"}) == ([], [])


def test_a_replica_short_of_the_floor_gets_shards_from_one_above_it() -> None:
    holders = ["a"] * 6 + ["b"] * 6 + ["c"] * 4
    assert len(plan("a", holders, {"a", "b", "c"})[0]) == 1
    holders = ["a"] * 5 + [""] + ["b"] * 6 + ["c"] * 4
    assert plan("a", holders, {"a", "b", "c"}) == ([], [])  # at its floor, it leaves the free shard to c
    assert plan("c", holders, {"a", "b", "c"}) == ([], [5])


def test_processes_started_together_share_by_their_count_before_they_see_each_other() -> None:
    release, acquire = plan("a", [""] * 16, {"a"}, assumed=2)
    assert release == [] and len(acquire) == 8  # not all 16: its sibling's membership is not seen yet
    holders = ["a" if i in acquire else "" for i in range(16)]
    rest = [i for i in range(16) if i not in acquire]
    assert plan("a", holders, {"a", "b"}, assumed=2) == ([], [])  # nothing to hand over when b shows up
    assert sorted(plan("b", holders, {"a", "b"}, assumed=2)[1]) == rest
    assert plan("a", holders, {"a"}, assumed=2) == ([], [])  # b not seen yet: its share waits for it
    assert sorted(plan("a", holders, {"a"}, overdue=set(rest), assumed=2)[1]) == rest  # b never came
    # Fewer assumed than alive changes nothing.
    assert plan("a", [""] * 16, {"a", "b", "c"}, assumed=2) == plan("a", [""] * 16, {"a", "b", "c"})


def test_a_shard_free_for_a_lease_duration_is_taken_over_the_share() -> None:
    holders = ["a"] * 8 + [""] + ["b"] * 7
    assert plan("a", holders, {"a", "b"})[1] == []  # b is short: it takes it
    assert plan("a", holders, {"a", "b"}, overdue={8})[1] == [8]  # still free a lease duration later


def _cycle(holders: list[str], members: list[str], rng: random.Random) -> bool:
    """Every replica plans once, in a random order, on what the previous ones wrote; True if anything moved."""
    moved = False
    for me in rng.sample(members, len(members)):
        release, acquire = plan(me, holders, set(members))
        for i in release:
            holders[i], moved = "", True
        for i in acquire:
            if not holders[i]:  # the compare-and-swap: only one replica takes a free shard
                holders[i], moved = me, True
    return moved


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 7])
def test_replicas_converge_to_every_shard_held_once_and_fairly(replicas: int) -> None:
    for seed in range(20):
        rng = random.Random(seed)  # noqa: S311 - a reproducible order of cycles, not a secret
        members = [f"r{i}" for i in range(replicas)]
        holders = [""] * 16
        for _ in range(30):
            if not _cycle(holders, members, rng):
                break
        else:
            raise AssertionError(f"no steady state: {holders}")
        counts = Counter(holders)
        assert "" not in counts and set(counts) == set(members), holders
        assert fair_share(16, replicas) >= max(counts.values()) >= min(counts.values()) >= 16 // replicas, counts


def test_a_joining_and_a_leaving_replica_rebalance() -> None:
    rng = random.Random(1)  # noqa: S311 - a reproducible order of cycles, not a secret
    holders = ["a"] * 8 + ["b"] * 8
    while _cycle(holders, ["a", "b", "c"], rng):
        pass
    assert sorted(Counter(holders).values()) == [5, 5, 6]
    holders = [h if h != "a" else "" for h in holders]  # a's shards expire
    while _cycle(holders, ["b", "c"], rng):
        pass
    assert Counter(holders) == {"b": 8, "c": 8}


def test_member_lease_names_are_dns_names_whatever_the_host_is_called() -> None:
    name = member_lease_name("krm-backend-prober", "Host_Name.Example_123_abcdef")
    assert name.startswith("krm-backend-prober-member-") and name == name.lower() and "_" not in name
