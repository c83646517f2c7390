"""zss.models"""
