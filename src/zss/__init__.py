"""zss: zero-shot semantic segmentation with the Seenmask Zero-Shot Network (SZN)."""

__version__ = "0.1.0"
