"""SZN at test time: nearest-embedding prediction (nearest.py: FCN-JE, SZN, SZN-PS), the
seen/unseen gates (gates.py, a registry) and the evaluation variants with their titles
(variants.py)."""
