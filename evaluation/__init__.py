"""Evaluation: the ruler.

Metrics (HR@K, FHR@K, LUF@K, LIF@K, Candidate Acc., coverage) and the non-LLM baselines
(pop, Swing on the negative graph, random) evaluated under the exact protocol of docs/EVALUATION.md.
"""
