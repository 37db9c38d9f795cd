"""edm_ros.geometry"""
