"""Reward computation and the reward server.

Ground truth (future negatives, Swing neighbours, future positives), codebook similarity, the
built-in reward variants, custom reward plug-ins, and the Ray actor pool that scores rollouts.
"""
