"""The EDM matcher node: wiring of topics, parameters and diagnostics around the pipeline.

Inputs (relative names, remappable): stereo mode ``left/image_rect``, ``left/camera_info``,
``right/image_rect``, ``right/camera_info``; sequential mode ``image``, ``camera_info``.
Outputs (private, ``/edm/...`` by default): ``~/matches`` (edm_ros/MatchArray),
``~/relative_pose`` (edm_ros/RelativePose, every processed frame), ``~/odometry``
(nav_msgs/Odometry), ``/tf`` (odom -> base, with ``publish_tf``), ``~/debug_image`` (drawn only
while subscribed) and ``/diagnostics``. Service ``~/reset`` (std_srvs/Trigger) restarts tracking.

Threads: the executor thread only pairs messages and drops them into a one-slot buffer; one
worker thread converts, runs the pipeline and publishes, always taking the newest frame.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from edm_ros.errors import ConfigError, EDMError
from edm_ros.geometry.keyframes import KeyframePolicy
from edm_ros.geometry.odometry import body_odometry
from edm_ros.msg import MatchArray, RelativePose
from edm_ros.pipeline import (
    MatchingPipeline,
    MonoFrame,
    PipelineConfig,
    PipelineOutput,
    StereoFrame,
)
from edm_ros.ros.conversions import header_of, numpy_to_image
from edm_ros.ros.diagnostics import NodeStatus, diagnostic_array
from edm_ros.ros.frames import TF_MESSAGE, StaticTransforms, mounting_from_parameter
from edm_ros.ros.inputs import InputSpec
from edm_ros.ros.outputs import (
    match_array_from_result,
    odometry_msg,
    relative_pose_msg,
    transform_msg,
)
from edm_ros.ros.params import NodeParams, declare_node_params, updated_node_params
from edm_ros.ros.shutdown import shutdown_ros
from edm_ros.ros.sync import InputTopic, LatestSlot, SynchronizedInputs
from edm_ros.visualization import draw_matches

NODE_NAME = "edm"
_WARN_THROTTLE_S = 5.0  # one warning per kind of bad input per this many seconds
_OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_TF_STATIC_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


@dataclass(frozen=True)
class _Received:
    """A synchronised group of input messages and when it arrived (time.monotonic seconds)."""

    msgs: tuple[Any, ...]
    arrival_s: float


class WarningThrottle:
    """One log line per kind of problem per period.

    rclpy's ``throttle_duration_sec`` throttles per call site, which would hide a second kind of
    bad input behind the first; here the kind is the text with its numbers blanked out.
    """

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last_s: dict[str, float] = {}

    def should_log(self, text: str) -> bool:
        """True when no warning of this kind was logged in the last period."""
        kind = re.sub(r"\d+(\.\d+)?", "#", text)
        now_s = time.monotonic()
        if now_s - self._last_s.get(kind, -float("inf")) < self._period_s:
            return False
        self._last_s[kind] = now_s
        return True


def pipeline_config(params: NodeParams) -> PipelineConfig:
    """The pipeline settings held in the node parameters."""
    return PipelineConfig(
        mode=params.mode,
        ransac_method=params.ransac_method,
        ransac_threshold_px=params.ransac_threshold_px,
        ransac_confidence=params.ransac_confidence,
        min_inliers=params.min_inliers,
        few_matches_warning=params.few_matches_warning,
        keyframe=KeyframePolicy(
            parallax_px=params.keyframe_parallax_px,
            min_inliers=params.keyframe_min_inliers,
            translation_m=params.keyframe_translation_m,
            rotation_deg=params.keyframe_rotation_deg,
        ),
        lost_frames_before_restart=params.lost_frames_before_restart,
    )


def build_matcher(params: NodeParams) -> Any:
    """The EDMMatcher the parameters describe.

    Raises:
        ConfigError: For a CUDA device torch cannot see.
        EDMError: When the weights cannot be loaded or the backend cannot run.
    """
    import torch

    from edm_ros.backends.options import BackendOptions
    from edm_ros.matcher import EDMMatcher

    if params.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {params.device!r}: torch sees no CUDA device; set device: cpu or install a "
            "CUDA build of torch"
        )
    if params.cpu_threads > 0:
        torch.set_num_threads(params.cpu_threads)  # the node's own process: its choice to make
    options = BackendOptions(
        cache_dir=Path(params.engine_cache_dir) if params.engine_cache_dir else None,
        precision=params.precision,
        batch_size=2 if params.mode == "stereo" else 1,  # stereo + temporal pair in one run
        rebuild=params.rebuild_engine,
        num_threads=params.cpu_threads,
        reuse_features=True,  # frames repeat the keyframe (and stereo the previous left image)
    )
    return EDMMatcher(
        weights=params.weights_path or None,
        device=params.device,
        config=params.matcher,
        backend=params.backend,
        backend_options=options,
    )


class MatcherNode(Node):
    """Matches stereo or sequential frames with EDM and publishes matches and relative poses."""

    def __init__(self, **kwargs: Any) -> None:
        """Args:
        **kwargs: Passed to ``rclpy.node.Node`` (e.g. ``parameter_overrides``).

        Raises:
            EDMError: Invalid parameters (all listed) or weights that cannot be loaded.
        """
        super().__init__(NODE_NAME, **kwargs)
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None  # started last: a failed start has none
        self.params = declare_node_params(self)
        self._matcher = build_matcher(self.params)
        self._announce_weights()
        self._pipeline = MatchingPipeline(self._matcher, pipeline_config(self.params))
        self._status = NodeStatus(self.params.no_data_timeout_s)
        self._slot: LatestSlot[_Received] = LatestSlot()
        self._input_spec = InputSpec.node_default(self.params.mode)
        self._warnings = WarningThrottle(_WARN_THROTTLE_S)
        self._matches_pub = self.create_publisher(MatchArray, "~/matches", _OUTPUT_QOS)
        self._pose_pub = self.create_publisher(RelativePose, "~/relative_pose", _OUTPUT_QOS)
        self._odometry_pub = self.create_publisher(Odometry, "~/odometry", _OUTPUT_QOS)
        self._static_transforms = StaticTransforms()
        self._mounting_source = ""
        self._tf_pub = self._subscribe_tf()
        self._reset_requested = threading.Event()
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._debug_pub = self.create_publisher(Image, "~/debug_image", _OUTPUT_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._inputs = self._subscribe_inputs()
        self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._work, name="edm_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"{self.params.mode} mode on {self.params.device}; {self._inputs.describe()}"
        )

    def _announce_weights(self) -> None:
        if self._matcher.random_weights:
            self.get_logger().warning(
                f"RANDOM WEIGHTS (weights_path: {self.params.weights_path}): every match and pose "
                "this node publishes is MEANINGLESS. Leave weights_path empty for the package's "
                f"weights, or give an EDM checkpoint. weights: {self._matcher.weights_description}"
            )
        else:
            self.get_logger().info(f"weights: {self._matcher.weights_description}")

    def _subscribe_tf(self) -> Any:
        """The /tf publisher (with ``publish_tf``) and the /tf_static subscription, if possible."""
        if TF_MESSAGE is None:
            self.get_logger().warning(
                "tf2_msgs is not importable: no /tf output and no /tf_static lookup; the camera "
                "mounting comes from camera_mounting (install tf2_msgs: `make venv` with "
                "../shared/ros2_tools, or ros-<distro>-tf2-msgs)"
            )
            return None
        self.create_subscription(TF_MESSAGE, "/tf_static", self._on_tf_static, _TF_STATIC_QOS)
        return self.create_publisher(TF_MESSAGE, "/tf", 10) if self.params.publish_tf else None

    def _on_tf_static(self, msg: Any) -> None:
        for problem in self._static_transforms.add(msg):
            self._bad_input(problem)

    def _on_reset(self, _: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """``~/reset``: the worker restarts tracking before its next frame."""
        self._reset_requested.set()
        response.success = True
        response.message = "tracking restarts at the next frame (it becomes the keyframe)"
        self.get_logger().info("reset requested: tracking restarts at the next frame")
        return response

    def _camera_mounting(self, camera_frame: str) -> Any:
        """T_base_camera from /tf_static when it links the frames, else from camera_mounting."""
        mounting = self._static_transforms.lookup(self.params.base_frame, camera_frame)
        source = f"/tf_static {self.params.base_frame} -> {camera_frame}"
        if mounting is None:
            mounting = mounting_from_parameter(self.params.camera_mounting)
            source = "the camera_mounting parameter"
        if source != self._mounting_source:
            self._mounting_source = source
            self.get_logger().info(f"camera mounting on {self.params.base_frame} from {source}")
        return mounting

    def _subscribe_inputs(self) -> SynchronizedInputs:
        qos = qos_profile_sensor_data
        if self.params.image_qos == "reliable":
            qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        topics = [
            InputTopic(msg_type, topic, qos)
            for msg_type, topic in zip(self._input_spec.message_types, self._input_spec.topics)
        ]
        return SynchronizedInputs(
            self,
            topics,
            self.params.sync_policy,
            self.params.sync_tolerance_s,
            self.params.sync_queue_size,
            self._on_inputs,
        )

    def _on_inputs(self, *msgs: Any) -> None:
        """Executor thread: hand the newest synchronised group to the worker, nothing else."""
        self._status.frame_received()
        self._slot.put(_Received(msgs, time.monotonic()))

    def _work(self) -> None:
        """Worker thread: newest frame first, at most ``max_rate_hz``, until shutdown."""
        last_start_s = -float("inf")
        while not self._stopping.is_set():
            rate_hz = self.params.max_rate_hz
            if rate_hz > 0 and self._stopping.wait(last_start_s + 1.0 / rate_hz - time.monotonic()):
                break
            received = self._slot.take(timeout_s=0.5)
            if received is None:
                continue
            last_start_s = time.monotonic()
            if self._reset_requested.is_set():
                self._reset_requested.clear()
                self._pipeline.reset()
            self._process(received)

    def _process(self, received: _Received) -> None:
        try:
            frame = self._frame_from(received.msgs)
            output = self._pipeline.process(frame)
            self._publish(output)
        except EDMError as err:
            self._bad_input(f"frame rejected: {err}")
            self._status.frame_rejected(str(err))
            return
        except Exception as err:  # a bug: keep the node alive, report it loudly once
            if self._stopping.is_set():
                return
            self.get_logger().error(
                f"unexpected error while processing a frame:\n{traceback.format_exc()}", once=True
            )
            self._status.internal_error(f"{type(err).__name__}: {err}")
            return
        if output.warning:
            self._bad_input(output.warning)
            self._status.input_warning(output.warning)
        self._status.frame_processed(output, (time.monotonic() - received.arrival_s) * 1e3)

    def _frame_from(self, msgs: tuple[Any, ...]) -> MonoFrame | StereoFrame:
        info_topics = [info for _, info in self._input_spec.per_camera(self._inputs.topic_names)]
        frame = self._input_spec.frame_from_msgs(
            msgs, info_topics, rectified=self.params.rectified_images
        )
        if isinstance(frame, StereoFrame):
            problems = [frame.left.camera_problem, frame.right.camera_problem]
        else:
            problems = [frame.camera_problem]
        for problem in filter(None, problems):
            self._bad_input(problem)
            self._status.input_warning(problem)
        return frame

    def _bad_input(self, text: str) -> None:
        if self._warnings.should_log(text):
            self.get_logger().warning(text)

    def _publish(self, output: PipelineOutput) -> None:
        for pair in output.pairs:
            self._matches_pub.publish(
                match_array_from_result(
                    pair.result, pair.mode, pair.reference, pair.current, pair.inlier_mask
                )
            )
        self._pose_pub.publish(relative_pose_msg(output))
        if output.odometry is not None:
            self._publish_odometry(output)
        if output.pairs and self._debug_pub.get_subscription_count() > 0:
            pair = output.pairs[-1]
            picture = draw_matches(*pair.images, pair.result, pair.inlier_mask)
            self._debug_pub.publish(numpy_to_image(picture, "bgr8", header_of(pair.current)))

    def _publish_odometry(self, output: PipelineOutput) -> None:
        assert output.odometry is not None
        mounting = self._camera_mounting(output.current.frame_id)
        pose, twist = body_odometry(output.odometry, mounting)
        header = header_of(output.current)
        header.frame_id = self.params.odom_frame
        self._odometry_pub.publish(odometry_msg(pose, twist, header, self.params.base_frame))
        if self._tf_pub is not None:
            transform = transform_msg(pose.transform, header, self.params.base_frame)
            self._tf_pub.publish(TF_MESSAGE(transforms=[transform]))

    def _publish_diagnostics(self) -> None:
        report = self._status.report(self._inputs.describe(), self._slot.dropped)
        if report.message.startswith("no data received"):  # e.g. camera_info never published
            self._bad_input(report.message)
        hardware_id = f"{self.params.device}; {self._matcher.weights_description}"
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics_pub.publish(
            diagnostic_array(report, f"{self.get_name()}: matcher", hardware_id, header)
        )

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Runtime changes: checked like the startup values; invalid ones are refused with why."""
        try:
            params = updated_node_params(self.params, {p.name: p.value for p in parameters})
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self.params = params
        self._pipeline.update_config(pipeline_config(params))
        return SetParametersResult(successful=True)

    def destroy_node(self) -> None:
        """Stop the worker (finishing its frame) before the publishers go away."""
        self._stopping.set()
        if self._worker is not None:
            self._slot.close()
            self._worker.join(timeout=30.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """``ros2 run edm_ros matcher_node [--ros-args ...]``; exits 2 with one line on bad setup.

    Ctrl-C at any moment ends it with status 0 and no traceback.
    """
    rclpy.init(args=args)
    try:
        node = MatcherNode()
    except EDMError as err:
        print(f"[edm matcher_node] cannot start: {err}", file=sys.stderr)
        shutdown_ros()
        sys.exit(2)
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C while the model loads
        shutdown_ros()
        return
    except Exception:
        if rclpy.ok():
            raise
        return  # ROS was shut down (Ctrl-C) while the node was creating its topics
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        shutdown_ros()


if __name__ == "__main__":
    main()
