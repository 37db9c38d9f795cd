"""Subscriber process for the bag replay test: records what arrives on image topics as JSON lines.

Usage: python bag_subscriber.py OUT_JSONL COUNT TIMEOUT_S TOPIC [TOPIC ...]
Exits 0 after COUNT images, 1 if the timeout passes first (what arrived is written either way).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main() -> int:
    out_path, count, timeout_s, topics = (
        sys.argv[1],
        int(sys.argv[2]),
        float(sys.argv[3]),
        sys.argv[4:],
    )
    rclpy.init(args=[])
    node = rclpy.create_node("bag_replay_probe")
    received: list[dict] = []

    def record(topic: str, msg: Image) -> None:
        received.append(
            {
                "topic": topic,
                "stamp_ns": msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec,
                "frame_id": msg.header.frame_id,
                "size": [msg.width, msg.height],
                "encoding": msg.encoding,
                "md5": hashlib.md5(bytes(msg.data)).hexdigest(),
            }
        )

    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for topic in topics:
        node.create_subscription(Image, topic, lambda msg, t=topic: record(t, msg), qos)
    deadline = time.monotonic() + timeout_s
    try:
        while len(received) < count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        with open(out_path, "w") as out:
            out.writelines(json.dumps(item) + "\n" for item in received)
        node.destroy_node()
        rclpy.shutdown()
    return 0 if len(received) >= count else 1


if __name__ == "__main__":
    sys.exit(main())
