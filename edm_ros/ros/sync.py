"""Pairing of image and camera_info messages by stamp, and the one-slot "latest frame" buffer.

:class:`StampSynchronizer` has message_filters' semantics (``TimeSynchronizer`` for the exact
policy, ``ApproximateTimeSynchronizer`` for the approximate one, down to the tolerance boundary)
and runs where message_filters is not installed. :class:`SynchronizedInputs` subscribes to the
input topics with message_filters when it is importable, with :class:`StampSynchronizer`
otherwise, and counts what arrives on each topic for the "no data received" diagnostic.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile

from edm_ros.errors import ConfigError
from edm_ros.ros.conversions import stamp_to_ns
from edm_ros.ros.params import SyncPolicy

FrameT = TypeVar("FrameT")


class StampSynchronizer:
    """Groups one message per input whose stamps agree, like message_filters.

    Exact policy: a group is emitted as soon as every input holds a message with the same stamp.
    Approximate policy: when a message arrives, the other inputs' messages at most
    ``tolerance_ns`` from it are tried closest first, and the first combination whose stamps
    spread by less than ``tolerance_ns`` (strictly, as message_filters) is emitted. Each input
    keeps at most ``queue_size`` messages (the oldest stamp is dropped first); emitted messages
    are removed.
    """

    def __init__(
        self,
        num_inputs: int,
        queue_size: int,
        policy: SyncPolicy,
        tolerance_ns: int,
        callback: Callable[..., None],
    ) -> None:
        """Args:
        num_inputs: Number of inputs (>= 1); callbacks receive this many messages.
        queue_size: Messages kept per input (>= 1).
        policy: "exact" or "approximate".
        tolerance_ns: Approximate policy: a group's stamps spread by less, nanoseconds.
        callback: Called with one message per input, in input order.

        Raises:
            ConfigError: For a non-positive count or queue size or an unknown policy.
        """
        if num_inputs < 1 or queue_size < 1 or policy not in ("exact", "approximate"):
            raise ConfigError(
                f"synchronizer: expected num_inputs >= 1, queue_size >= 1 and policy exact or "
                f"approximate, got {num_inputs}, {queue_size}, {policy!r}"
            )
        self._queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self._queue_size = queue_size
        self._policy = policy
        self._tolerance_ns = tolerance_ns
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, index: int, msg: Any, stamp_ns: int) -> None:
        """Queue ``msg`` (input ``index``, stamp in nanoseconds) and emit any complete group."""
        with self._lock:
            queue = self._queues[index]
            queue[stamp_ns] = msg
            while len(queue) > self._queue_size:
                del queue[min(queue)]
            if self._policy == "exact":
                groups = self._take_exact_groups()
            else:
                groups = self._take_approximate_group(index, stamp_ns)
        for group in groups:  # outside the lock: the callback may be slow or re-enter
            self._callback(*group)

    def _take_exact_groups(self) -> list[list[Any]]:
        common = set.intersection(*(set(queue) for queue in self._queues))
        return [[queue.pop(stamp) for queue in self._queues] for stamp in sorted(common)]

    def _take_approximate_group(self, index: int, stamp_ns: int) -> list[list[Any]]:
        candidates = []  # per input: stamps within tolerance of the new one, closest first
        for other, queue in enumerate(self._queues):
            if other == index:
                candidates.append([stamp_ns])
                continue
            near = [s for s in queue if abs(s - stamp_ns) <= self._tolerance_ns]
            if not near:
                return []
            candidates.append(sorted(near, key=lambda s: abs(s - stamp_ns)))
        for stamps in itertools.product(*candidates):
            if max(stamps) - min(stamps) < self._tolerance_ns:
                return [[queue.pop(s) for queue, s in zip(self._queues, stamps)]]
        return []


def tolerance_ns(tolerance_s: float) -> int:
    """The tolerance in nanoseconds as message_filters converts its slop (an rclpy Duration)."""
    return Duration(seconds=tolerance_s).nanoseconds


def message_filters_synchronizer(
    message_filters: ModuleType,
    inputs: Sequence[Any],
    policy: SyncPolicy,
    tolerance_s: float,
    queue_size: int,
) -> Any:
    """message_filters' synchroniser for ``policy`` over the filters ``inputs``."""
    if policy == "exact":
        return message_filters.TimeSynchronizer(inputs, queue_size)
    return message_filters.ApproximateTimeSynchronizer(inputs, queue_size, tolerance_s)


@dataclass(frozen=True)
class InputTopic:
    """One synchronised input: its message type, topic name (relative, remappable) and QoS."""

    msg_type: type
    topic: str
    qos: QoSProfile


class SynchronizedInputs:
    """Subscriptions to the input topics, paired by stamp, with per-topic receive counts.

    Uses message_filters (``TimeSynchronizer`` / ``ApproximateTimeSynchronizer``) when importable,
    else :class:`StampSynchronizer`; both deliver the same groups.
    """

    def __init__(
        self,
        node: Node,
        inputs: Sequence[InputTopic],
        policy: SyncPolicy,
        tolerance_s: float,
        queue_size: int,
        callback: Callable[..., None],
    ) -> None:
        """Args:
        node: The node that owns the subscriptions.
        inputs: The topics, in the order the callback receives their messages.
        policy: "exact" or "approximate" (``tolerance_s``).
        tolerance_s: Approximate policy: largest stamp spread, seconds.
        queue_size: Messages kept per input while pairing.
        callback: Called with one message per input, from the executor's thread.
        """
        self.policy = policy
        self.tolerance_s = tolerance_s
        self.queue_size = queue_size
        self.received = [0] * len(inputs)
        self._lock = threading.Lock()
        try:
            import message_filters
        except ImportError:
            message_filters = None
        if message_filters is not None:
            self.implementation = "message_filters"
            self._keep = self._subscribe_message_filters(message_filters, node, inputs, callback)
        else:
            self.implementation = "edm_ros"
            self._keep = self._subscribe_own(node, inputs, callback)
        self.topic_names = [sub.topic_name for sub in self._subscriptions]

    def _subscribe_message_filters(
        self, message_filters: Any, node: Node, inputs: Sequence[InputTopic], callback: Callable
    ) -> Any:
        filters = [
            message_filters.Subscriber(node, item.msg_type, item.topic, qos_profile=item.qos)
            for item in inputs
        ]
        for index, subscriber in enumerate(filters):
            subscriber.registerCallback(functools.partial(self._count, index))
        synchronizer = message_filters_synchronizer(
            message_filters, filters, self.policy, self.tolerance_s, self.queue_size
        )
        synchronizer.registerCallback(callback)
        self._subscriptions = [subscriber.sub for subscriber in filters]
        return synchronizer, filters

    def _subscribe_own(
        self, node: Node, inputs: Sequence[InputTopic], callback: Callable
    ) -> StampSynchronizer:
        synchronizer = StampSynchronizer(
            len(inputs), self.queue_size, self.policy, tolerance_ns(self.tolerance_s), callback
        )

        def on_message(index: int, msg: Any) -> None:
            self._count(index, msg)
            synchronizer.add(index, msg, stamp_to_ns(msg.header.stamp))

        self._subscriptions = [
            node.create_subscription(
                item.msg_type, item.topic, functools.partial(on_message, index), item.qos
            )
            for index, item in enumerate(inputs)
        ]
        return synchronizer

    def _count(self, index: int, _msg: Any) -> None:
        with self._lock:
            self.received[index] += 1

    def describe(self) -> str:
        """What is awaited, for the "no data received" diagnostic."""
        with self._lock:
            counts = list(self.received)
        topics = ", ".join(
            f"{name} ({count} received)" for name, count in zip(self.topic_names, counts)
        )
        if self.policy == "exact":
            rule = "exact sync (identical header stamps)"
        else:
            rule = f"approximate sync (stamps less than {self.tolerance_s:g} s apart)"
        return f"waiting for {topics} with {rule}, queue {self.queue_size} ({self.implementation})"


class LatestSlot(Generic[FrameT]):
    """A one-slot buffer between the subscription thread and the processing thread.

    ``put`` replaces a frame that was not taken yet (counted in ``dropped``): the worker always
    gets the newest frame and never works through a backlog.
    """

    def __init__(self) -> None:
        self._frame: FrameT | None = None
        self._condition = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, frame: FrameT) -> None:
        """Store ``frame``, replacing (and counting) one still waiting."""
        with self._condition:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._condition.notify()

    def take(self, timeout_s: float) -> FrameT | None:
        """The waiting frame, removed; None after ``timeout_s`` seconds without one or if closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._frame is not None or self._closed, timeout_s)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        """Wake any waiting ``take`` (shutdown)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
