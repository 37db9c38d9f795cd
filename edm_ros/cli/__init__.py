"""edm_ros.cli"""
