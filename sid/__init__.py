"""Semantic IDs.

Item encoding (text, categorical and precomputed embeddings), the RQ-VAE quantiser, collision
handling, the SID token vocabulary and prefix trie, and codebook export for the reward.
"""
