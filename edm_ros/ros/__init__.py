"""edm_ros.ros"""
