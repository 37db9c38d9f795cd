"""edm_ros.evaluation"""
