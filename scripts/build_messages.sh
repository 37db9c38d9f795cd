#!/usr/bin/env bash
# Generate and install the edm_ros ROS 2 messages into the virtual environment's prefix, using the
# ROS 2 wheels from PyPI (no system ROS needed). The Python package itself is pip-installed in
# editable mode, so only the generated code goes into site-packages.
set -euo pipefail
: "${VIRTUAL_ENV:?activate the venv or set VIRTUAL_ENV}"
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in cmake c++ make; do
  command -v "$tool" >/dev/null || {
    echo "building the ROS messages needs '$tool' (Debian/Ubuntu: apt-get install cmake g++ make)" >&2
    exit 1
  }
done
py="$VIRTUAL_ENV/bin/python"
# one build folder per venv: a second distro's venv must not reuse the first one's CMake cache
build="$here/build_messages/$(basename "$VIRTUAL_ENV")"

# The wheels' CMake exports carry include paths of the machine that built them; point them here.
pyinc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
npinc=$("$py" -c "import numpy; print(numpy.get_include())")
{ grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' --include='*.cmake' "$VIRTUAL_ENV/share" 2>/dev/null || true; } | xargs -r sed -i -E \
  "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$npinc#g; s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g"

export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV" PATH="$VIRTUAL_ENV/bin:$PATH"

mkdir -p "$build"
cmake -S "$here" -B "$build/edm_ros" -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" -DEDM_ROS_INSTALL_PYTHON=OFF \
  -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$py" -DCMAKE_BUILD_TYPE=Release > "$build.log" 2>&1 \
  || { cat "$build.log"; exit 1; }
cmake --build "$build/edm_ros" -j2 >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
cmake --install "$build/edm_ros" >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }

# rosidl writes an empty edm_ros/__init__.py; removing it lets the source package (which extends its
# __path__ with pkgutil) be the regular package while the generated msg modules stay importable.
site=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -f "$site/edm_ros/__init__.py"
# Its egg-info would make pip treat the generated files as an "edm_ros" distribution and delete
# them when the editable package is (re)installed.
rm -rf "$site"/edm_ros-*.egg-info
echo "edm_ros messages installed into $VIRTUAL_ENV"
