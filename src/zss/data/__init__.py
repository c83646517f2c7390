"""zss.data"""
