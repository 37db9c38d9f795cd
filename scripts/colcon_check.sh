#!/usr/bin/env bash
# Build and test edm_ros in a colcon workspace the way a ROS user does, with the venv's ROS 2 wheels
# (and colcon from PyPI) as the underlay instead of /opt/ros/<distro>:
#   colcon build --packages-select edm_ros; colcon test; ros2 run edm_ros matcher_node from install/.
# Usage: VIRTUAL_ENV=.venv bash scripts/colcon_check.sh [WORKSPACE]   (default build/colcon)
# colcon test runs the whole suite; PYTEST_ADDOPTS (e.g. "-k launch") narrows it.
set -euo pipefail
: "${VIRTUAL_ENV:?activate the venv or set VIRTUAL_ENV}"
here=$(cd "$(dirname "$0")/.." && pwd)
ws=$(realpath -m "${1:-$here/build/colcon}")
venv=$(realpath "$VIRTUAL_ENV")
mkdir -p "$ws/src"
ln -sfn "$here" "$ws/src/edm_ros"
cd "$ws"
# the underlay: what sourcing /opt/ros/<distro>/setup.bash would give
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
colcon build --packages-select edm_ros --event-handlers console_cohesion- \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=ON
test -x install/edm_ros/lib/edm_ros/matcher_node
set +u  # setup.bash reads unset variables
# shellcheck disable=SC1091
source install/setup.bash
set -u
prefix=$(ros2 pkg prefix edm_ros)
[[ $prefix == "$ws/install/edm_ros" ]] || { echo "ros2 finds edm_ros in $prefix, not in $ws/install" >&2; exit 1; }
echo "ros2 run edm_ros matcher_node: $(ros2 pkg executables edm_ros)"
colcon test-result --delete-yes >/dev/null  # no stale results of an earlier run
colcon test --packages-select edm_ros
colcon test-result --verbose
