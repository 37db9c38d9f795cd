"""edm_ros.ros.sync: message_filters semantics of the stamp synchroniser; the one-slot buffer."""

from __future__ import annotations

import threading

import pytest

from edm_ros.errors import ConfigError
from edm_ros.ros.sync import LatestSlot, StampSynchronizer

MS = 1_000_000  # nanoseconds


def _collector(num_inputs: int, queue_size: int, policy: str, tolerance_ns: int = 0):
    groups: list[tuple] = []
    sync = StampSynchronizer(
        num_inputs, queue_size, policy, tolerance_ns, lambda *m: groups.append(m)
    )
    return sync, groups


def test_exact_policy_pairs_identical_stamps_in_any_arrival_order() -> None:
    sync, groups = _collector(2, 10, "exact")
    sync.add(0, "image@1", 1 * MS)
    sync.add(0, "image@2", 2 * MS)
    sync.add(1, "info@2", 2 * MS)
    sync.add(1, "info@1", 1 * MS)
    assert groups == [("image@2", "info@2"), ("image@1", "info@1")]


def test_exact_policy_never_pairs_different_stamps() -> None:
    sync, groups = _collector(2, 10, "exact")
    sync.add(0, "image", 1 * MS)
    sync.add(1, "info", 1 * MS + 1)
    assert groups == []


def test_exact_policy_forgets_the_oldest_beyond_the_queue_size() -> None:
    sync, groups = _collector(2, 2, "exact")
    for stamp in (1, 2, 3):
        sync.add(0, f"image@{stamp}", stamp * MS)
    sync.add(1, "info@1", 1 * MS)  # image@1 was evicted by image@3
    sync.add(1, "info@3", 3 * MS)
    assert groups == [("image@3", "info@3")]


@pytest.mark.parametrize("jitter_ms", [0, 2, -4, 5])
def test_approximate_policy_pairs_stereo_with_jitter_within_tolerance(jitter_ms: int) -> None:
    sync, groups = _collector(4, 10, "approximate", tolerance_ns=5 * MS)
    for frame in range(3):
        left = 1000 * MS + frame * 33 * MS
        right = left + jitter_ms * MS
        sync.add(0, ("left", frame), left)
        sync.add(1, ("left_info", frame), left)
        sync.add(2, ("right", frame), right)
        sync.add(3, ("right_info", frame), right)
    assert groups == [(("left", f), ("left_info", f), ("right", f), ("right_info", f))
                      for f in range(3)]  # fmt: skip


def test_approximate_policy_does_not_pair_beyond_tolerance() -> None:
    sync, groups = _collector(2, 10, "approximate", tolerance_ns=5 * MS)
    sync.add(0, "left", 100 * MS)
    sync.add(1, "right", 106 * MS)
    assert groups == []


def test_approximate_policy_takes_the_closest_candidate() -> None:
    sync, groups = _collector(2, 10, "approximate", tolerance_ns=10 * MS)
    sync.add(1, "right@95", 95 * MS)
    sync.add(1, "right@99", 99 * MS)
    sync.add(0, "left@100", 100 * MS)
    assert groups == [("left@100", "right@99")]
    sync.add(0, "left@96", 96 * MS)  # the remaining right@95 is still available
    assert groups[-1] == ("left@96", "right@95")


def test_approximate_policy_checks_the_spread_of_the_whole_group() -> None:
    sync, groups = _collector(3, 10, "approximate", tolerance_ns=5 * MS)
    sync.add(1, "b@96", 96 * MS)
    sync.add(2, "c@104", 104 * MS)
    sync.add(0, "a@100", 100 * MS)  # each within 4 ms of a, but b..c spans 8 ms
    assert groups == []
    sync.add(2, "c@99", 99 * MS)
    assert groups == [("a@100", "b@96", "c@99")]


def test_synchronizer_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="queue_size >= 1"):
        StampSynchronizer(2, 0, "exact", 0, print)
    with pytest.raises(ConfigError, match="'latest'"):
        StampSynchronizer(2, 5, "latest", 0, print)


def test_latest_slot_keeps_only_the_newest_frame_and_counts_the_dropped() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for frame in range(5):
        slot.put(frame)
    assert slot.take(timeout_s=0.0) == 4
    assert slot.dropped == 4
    assert slot.take(timeout_s=0.0) is None


def test_latest_slot_wakes_a_waiting_consumer() -> None:
    slot: LatestSlot[str] = LatestSlot()
    taken: list[str | None] = []
    consumer = threading.Thread(target=lambda: taken.append(slot.take(timeout_s=30.0)))
    consumer.start()
    slot.put("frame")
    consumer.join(timeout=30.0)
    assert taken == ["frame"] and slot.dropped == 0


def test_closing_the_slot_releases_the_consumer() -> None:
    slot: LatestSlot[str] = LatestSlot()
    taken: list[str | None] = []
    consumer = threading.Thread(target=lambda: taken.append(slot.take(timeout_s=30.0)))
    consumer.start()
    slot.close()
    consumer.join(timeout=30.0)
    assert taken == [None] and not consumer.is_alive()
