"""edm_ros.backends"""
