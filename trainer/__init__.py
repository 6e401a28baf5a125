"""Learners.

SFT and GRPO learners on DeepSpeed ZeRO, losses and advantages (verl's core algorithms), the
curriculum scheduler, model/tokenizer factories and checkpoints.
"""
