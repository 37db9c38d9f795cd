"""edm_ros.model"""
