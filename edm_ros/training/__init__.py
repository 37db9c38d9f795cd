"""edm_ros.training"""
