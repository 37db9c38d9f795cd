"""edm_ros.ros.sync: the stamp synchroniser and message_filters' on the same cases (both must
pair alike, down to the tolerance boundary); the subscriptions; the one-slot buffer."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from edm_ros.errors import ConfigError
from edm_ros.ros.conversions import stamp_to_ns
from edm_ros.ros.sync import (
    InputTopic,
    LatestSlot,
    StampSynchronizer,
    SynchronizedInputs,
    message_filters_synchronizer,
    tolerance_ns,
)

MS = 1_000_000  # nanoseconds
IMPLEMENTATIONS = ("edm_ros", "message_filters")
Add = Callable[[int, str, int], None]  # input index, message name, stamp (ns)


def _message(name: str, stamp_ns: int) -> SimpleNamespace:
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return SimpleNamespace(name=name, header=Header(stamp=stamp))


def _collector(
    implementation: str, num_inputs: int, queue_size: int, policy: str, tolerance_s: float = 0.0
) -> tuple[Add, list[tuple[str, ...]]]:
    """``add`` feeding one synchroniser of ``implementation``, and the groups it emitted (names)."""
    groups: list[tuple[str, ...]] = []

    def record(*msgs: SimpleNamespace) -> None:
        groups.append(tuple(msg.name for msg in msgs))

    if implementation == "edm_ros":
        ours = StampSynchronizer(num_inputs, queue_size, policy, tolerance_ns(tolerance_s), record)

        def add(index: int, name: str, stamp_ns: int) -> None:
            msg = _message(name, stamp_ns)
            ours.add(index, msg, stamp_to_ns(msg.header.stamp))

        return add, groups
    message_filters = pytest.importorskip("message_filters")
    inputs = [message_filters.SimpleFilter() for _ in range(num_inputs)]
    theirs = message_filters_synchronizer(message_filters, inputs, policy, tolerance_s, queue_size)
    theirs.registerCallback(record)
    return lambda index, name, stamp_ns: inputs[index].signalMessage(
        _message(name, stamp_ns)
    ), groups


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    return request.param


def test_exact_policy_pairs_identical_stamps_in_any_arrival_order(implementation: str) -> None:
    add, groups = _collector(implementation, 2, 10, "exact")
    add(0, "image@1", 1 * MS)
    add(0, "image@2", 2 * MS)
    add(1, "info@2", 2 * MS)
    add(1, "info@1", 1 * MS)
    assert groups == [("image@2", "info@2"), ("image@1", "info@1")]


def test_exact_policy_never_pairs_different_stamps(implementation: str) -> None:
    add, groups = _collector(implementation, 2, 10, "exact")
    add(0, "image", 1 * MS)
    add(1, "info", 1 * MS + 1)
    assert groups == []


def test_exact_policy_forgets_the_oldest_beyond_the_queue_size(implementation: str) -> None:
    add, groups = _collector(implementation, 2, 2, "exact")
    for stamp in (1, 2, 3):
        add(0, f"image@{stamp}", stamp * MS)
    add(1, "info@1", 1 * MS)  # image@1 was evicted by image@3
    add(1, "info@3", 3 * MS)
    assert groups == [("image@3", "info@3")]


@pytest.mark.parametrize("jitter_ms", [0, 2, -4, 4.9])
def test_approximate_policy_pairs_stereo_with_jitter_within_tolerance(
    implementation: str, jitter_ms: float
) -> None:
    add, groups = _collector(implementation, 4, 10, "approximate", tolerance_s=0.005)
    for frame in range(3):
        left = 1000 * MS + frame * 33 * MS
        right = left + round(jitter_ms * MS)
        add(0, f"left{frame}", left)
        add(1, f"left_info{frame}", left)
        add(2, f"right{frame}", right)
        add(3, f"right_info{frame}", right)
    assert groups == [
        (f"left{f}", f"left_info{f}", f"right{f}", f"right_info{f}") for f in range(3)
    ]


@pytest.mark.parametrize("tolerance_s", [0.005, 0.01, 0.0029, 1 / 30])
@pytest.mark.parametrize("offset_ns", [-1, 0, 1])
def test_approximate_policy_pairs_only_below_the_tolerance(
    implementation: str, tolerance_s: float, offset_ns: int
) -> None:
    add, groups = _collector(implementation, 2, 10, "approximate", tolerance_s=tolerance_s)
    add(0, "left", 100 * MS)
    add(1, "right", 100 * MS + tolerance_ns(tolerance_s) + offset_ns)
    assert groups == ([("left", "right")] if offset_ns < 0 else [])


def test_approximate_policy_takes_the_closest_candidate(implementation: str) -> None:
    add, groups = _collector(implementation, 2, 10, "approximate", tolerance_s=0.01)
    add(1, "right@95", 95 * MS)
    add(1, "right@99", 99 * MS)
    add(0, "left@100", 100 * MS)
    assert groups == [("left@100", "right@99")]
    add(0, "left@96", 96 * MS)  # the remaining right@95 is still available
    assert groups[-1] == ("left@96", "right@95")


def test_approximate_policy_checks_the_spread_of_the_whole_group(implementation: str) -> None:
    add, groups = _collector(implementation, 3, 10, "approximate", tolerance_s=0.005)
    add(1, "b@96", 96 * MS)
    add(2, "c@104", 104 * MS)
    add(0, "a@100", 100 * MS)  # each within 4 ms of a, but b..c spans 8 ms
    assert groups == []
    add(2, "c@99", 99 * MS)
    assert groups == [("a@100", "b@96", "c@99")]


@pytest.mark.parametrize("policy", ["exact", "approximate"])
@pytest.mark.parametrize("seed", range(5))
def test_both_implementations_group_jittered_streams_alike(policy: str, seed: int) -> None:
    """Stereo at 30 Hz: stamps jitter by up to ±6 ms around a 5 ms tolerance (many exactly on
    it), some messages are lost and the inputs arrive shuffled."""
    rng = random.Random(seed)
    arrivals = []
    for frame in range(40):
        base = 1_000 * MS + frame * 33 * MS
        left = base + rng.choice([0, rng.randint(-6, 6) * MS])
        right = left + rng.choice([0, 5 * MS, -5 * MS, rng.randint(-6_000, 6_000) * 1000])
        stamps = (left, left, right, right if rng.random() < 0.8 else right + MS)
        arrivals += [(i, f"{i}:{frame}", t) for i, t in enumerate(stamps) if rng.random() < 0.95]
    rng.shuffle(arrivals)
    results = []
    for implementation in IMPLEMENTATIONS:
        add, groups = _collector(implementation, 4, 5, policy, tolerance_s=0.005)
        for arrival in arrivals:
            add(*arrival)
        results.append(groups)
    assert results[0] == results[1] and results[0]


def test_node_subscribes_with_message_filters_when_importable(probe_node: Node) -> None:
    """Real subscriptions: an image and a camera_info with equal stamps reach the callback."""
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    topics = [
        InputTopic(Image, "sync_test/image", reliable),
        InputTopic(CameraInfo, "sync_test/camera_info", reliable),
    ]
    groups: list[tuple] = []
    inputs = SynchronizedInputs(probe_node, topics, "exact", 0.0, 10, lambda *m: groups.append(m))
    try:
        import message_filters  # noqa: F401
    except ImportError:
        assert inputs.implementation == "edm_ros"
    else:
        assert inputs.implementation == "message_filters"
    assert f"({inputs.implementation})" in inputs.describe()
    image_pub = probe_node.create_publisher(Image, "sync_test/image", reliable)
    info_pub = probe_node.create_publisher(CameraInfo, "sync_test/camera_info", reliable)
    header = Header(stamp=Time(sec=5, nanosec=7), frame_id="camera")
    image_pub.publish(Image(header=header))
    info_pub.publish(CameraInfo(header=header))
    executor = SingleThreadedExecutor(context=probe_node.context)
    executor.add_node(probe_node)
    for _ in range(500):  # bounded: at most 500 executor turns of up to 20 ms
        if groups:
            break
        executor.spin_once(timeout_sec=0.02)
    executor.remove_node(probe_node)
    assert len(groups) == 1 and inputs.received == [1, 1]
    assert [type(m) for m in groups[0]] == [Image, CameraInfo]


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
