"""pip-installable pure-Python part of edm_ros (the network, backends, geometry, CLI, ROS layer).

ROS users build the package with colcon instead (CMakeLists.txt, package.xml), which also generates
the edm_ros/msg interfaces. colcon ignores this file.
"""

from setuptools import find_packages, setup

setup(
    name="edm_ros",
    version="0.1.0",
    description="EDM deep feature matcher for ROS 2: dense matches and relative poses",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["edm_ros", "edm_ros.*"]),
    package_data={"edm_ros": ["weights/*.ckpt"]},  # the default weights (docs/weights.md)
    install_requires=["torch>=2.1", "numpy>=1.26", "opencv-python-headless>=4.9"],
    extras_require={
        "onnx": ["onnx>=1.17", "onnxruntime>=1.20", "onnxscript>=0.7"],
        "eval": ["matplotlib>=3.8", "tqdm>=4.66", "poselib>=2.0", "rosbags>=0.11", "pyyaml>=6"],
        "train": ["pyyaml>=6", "matplotlib>=3.8", "tqdm>=4.66", "h5py>=3.10"],
        "test": ["pytest>=8", "pyyaml>=6", "psutil>=5.9"],
    },
    entry_points={
        "console_scripts": [
            "edm-match=edm_ros.cli.match:main",
            "edm-bench=edm_ros.cli.bench:main",
            "edm-export=edm_ros.cli.export:main",
            "edm-eval=edm_ros.cli.evaluate:main",
            "edm-bag=edm_ros.cli.bag:main",
            "edm-train=edm_ros.cli.train:main",
            "edm-matcher-node=edm_ros.ros.matcher_node:main",
        ]
    },
)
