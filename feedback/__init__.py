"""Feedback logs.

The event/item schema and its validation, loaders (MovieLens, generic Parquet), the synthetic
e-commerce simulator, and the train/evaluation splits with their labels.
"""
