"""zss.embeddings"""
