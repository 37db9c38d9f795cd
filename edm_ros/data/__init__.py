"""edm_ros.data"""
