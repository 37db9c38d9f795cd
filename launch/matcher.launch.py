"""Start the EDM matcher node.

    ros2 launch edm_ros matcher.launch.py [mode:=stereo|sequential] [params_file:=my.yaml]
        [weights_path:=...] [device:=cpu] [use_sim_time:=true] [namespace:=cam]
        [left_image:=...] [right_image:=...] [left_camera_info:=...] [right_camera_info:=...]
        [image:=...] [camera_info:=...] [log_level:=info] [omp_wait_policy:=PASSIVE|ACTIVE]

Parameters come from config/matcher.yaml, then config/<mode>.yaml, then ``params_file``, then the
``weights_path``, ``device`` and ``use_sim_time`` arguments (later ones win); defaults live only in
those files, so an empty ``weights_path`` or ``device`` argument leaves the files' value. Works on
Humble, Jazzy and Kilted.

``omp_wait_policy`` (default PASSIVE) sets the node's OpenMP threads to sleep rather than spin
while waiting: on a CPU shared with other processes, as on a robot, torch inference is then several
times faster (3.4x with one other busy process on a 2-core machine); on an otherwise idle CPU it
costs about 10 %, so ACTIVE suits a dedicated one (docs/deployment.md).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription

MODES = ("stereo", "sequential")
# launch argument -> the node's input topic it remaps (also its default: no remapping)
TOPIC_ARGUMENTS = {
    "left_image": "left/image_rect",
    "left_camera_info": "left/camera_info",
    "right_image": "right/image_rect",
    "right_camera_info": "right/camera_info",
    "image": "image",
    "camera_info": "camera_info",
}
# launch arguments that override the node parameter of the same name unless left empty
PARAMETER_ARGUMENTS = {
    "weights_path": "EDM checkpoint (a local file); empty: the params files' weights_path",
    "device": "cpu, cuda or cuda:N; empty: the params files' device",
}


def _matcher_node(context: LaunchContext) -> list[Node]:
    mode = LaunchConfiguration("mode").perform(context)  # one of MODES (declared choices)
    config = Path(get_package_share_directory("edm_ros")) / "config"
    parameters = [str(config / "matcher.yaml"), str(config / f"{mode}.yaml")]
    params_file = LaunchConfiguration("params_file").perform(context)
    if params_file:
        if not Path(params_file).is_file():
            raise FileNotFoundError(f"params_file:={params_file} does not exist")
        parameters.append(params_file)
    overrides: dict[str, str | bool] = {
        name: value
        for name in PARAMETER_ARGUMENTS
        if (value := LaunchConfiguration(name).perform(context))
    }
    overrides["use_sim_time"] = LaunchConfiguration("use_sim_time").perform(context) == "true"
    remappings = [
        (topic, LaunchConfiguration(argument).perform(context))
        for argument, topic in TOPIC_ARGUMENTS.items()
    ]
    return [
        Node(
            package="edm_ros",
            executable="matcher_node",
            name="edm",
            namespace=LaunchConfiguration("namespace").perform(context),
            parameters=[*parameters, overrides],
            remappings=remappings,
            arguments=[
                "--ros-args",
                "--log-level",
                LaunchConfiguration("log_level").perform(context),
            ],
            additional_env={
                "OMP_WAIT_POLICY": LaunchConfiguration("omp_wait_policy").perform(context)
            },
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    """The launch arguments and the node."""
    arguments = [
        DeclareLaunchArgument(
            "mode",
            default_value="stereo",
            choices=list(MODES),
            description="stereo (left/right rectified pairs) or sequential",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value="",
            description="YAML file applied after config/matcher.yaml and "
            "config/<mode>.yaml (e.g. to set weights_path)",
        ),
        *(
            DeclareLaunchArgument(name, default_value="", description=description)
            for name, description in PARAMETER_ARGUMENTS.items()
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="the node's clock follows /clock (bag playback) instead of the system",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
        DeclareLaunchArgument(
            "omp_wait_policy",
            default_value="PASSIVE",
            choices=["PASSIVE", "ACTIVE"],
            description="OpenMP threads sleep (PASSIVE: CPU shared with other processes) or spin "
            "(ACTIVE: a CPU of its own) while waiting",
        ),
    ]
    arguments += [
        DeclareLaunchArgument(argument, default_value=topic,
                              description=f"topic remapped to the node's {topic}")
        for argument, topic in TOPIC_ARGUMENTS.items()
    ]  # fmt: skip
    return LaunchDescription([*arguments, OpaqueFunction(function=_matcher_node)])
