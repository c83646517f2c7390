"""zss.modules"""
