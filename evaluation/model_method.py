"""The LLM as a recommender under the protocol: trie-constrained beam search for top-K, teacher-forced
log-probabilities for Candidate Acc., and the 4-choice alignment accuracy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.methods import Method, register_method
from feedback.split import Split
from trainer.prompts import ContextConfig, alignment_question, build_context


def load_model_dir(checkpoint: str, sid_dir: str = "", device: str = "auto"):
    """Model, tokenizer, SID index and context config of a conrec model folder; the model on `device`
    ('auto': the GPU when there is one)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sid.index import SidIndex

    ck = Path(checkpoint)
    card = json.loads((ck / "conrec.json").read_text()) if (ck / "conrec.json").exists() else {}
    sid_dir = sid_dir or card.get("sid_dir", "")
    if not sid_dir:
        raise FileNotFoundError(f"{ck} has no conrec.json naming its SIDs; pass --sid-dir")
    tok = AutoTokenizer.from_pretrained(ck)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float32).eval().to(device)
    from trainer.models import check_tokenizer_fits

    check_tokenizer_fits(tok, model.get_input_embeddings().num_embeddings, str(ck))
    index = SidIndex.load(sid_dir)
    ctx = ContextConfig(**card["context"]) if "context" in card else ContextConfig()
    return model, tok, index, ctx


@register_method("model")
@dataclass
class ModelMethod(Method):
    checkpoint: str = ""
    sid_dir: str = ""
    batch_size: int = 16
    extra_beams: int = 20
    """Beams beyond K, so that K remain after the user's context items are removed."""
    context: ContextConfig | None = None
    device: str = "auto"
    """Where the model runs: 'auto' (the GPU when there is one), 'cpu', 'cuda', 'cuda:1', …"""
    renormalize: bool = False
    """Rank by the constrained distribution (each level renormalised over the trie's open values), as the rollout
    engines do (`evaluate_on: engines`), instead of the protocol's raw log-probs."""

    def fit(self, split: Split) -> None:
        from sid.tokens import SidTokenMap

        self.split = split
        self.model, self.tok, self.index, card_ctx = load_model_dir(self.checkpoint, self.sid_dir, self.device)
        self.context = self.context or card_ctx
        self.index.check_catalogue(split.data.items["item_id"].to_numpy())
        self.map = SidTokenMap(self.tok, self.index.level_sizes)

    def prompt(self, r: int) -> str:
        t = self.split.test
        return build_context(t["context_items"].iat[r], t["context_fb"].iat[r], t["context_ts"].iat[r],
                             int(t["t_cut"].iat[r]), self.index.sid, self.context)

    def recommend(self, test_rows: np.ndarray, k: int) -> np.ndarray:
        from rollout.constrained import trie_beam_search

        out = np.full((len(test_rows), k), -1, dtype=np.int64)
        for s in range(0, len(test_rows), self.batch_size):
            rows = test_rows[s:s + self.batch_size]
            beams = trie_beam_search(self.model, self.tok, [self.prompt(int(r)) for r in rows], self.index.trie,
                                     self.map, num_beams=k + self.extra_beams, renormalize=self.renormalize)
            for b, (r, found) in enumerate(zip(rows, beams)):
                seen = set(self.split.test["context_items"].iat[int(r)].tolist())
                items = [i for i in (self.index.trie.item(c) for c, _ in found) if i is not None and i not in seen]
                out[s + b, :len(items[:k])] = items[:k]
        return out

    def score_candidates(self, test_rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        from rollout.constrained import code_logprobs

        out = np.empty(candidates.shape, dtype=np.float64)
        for s in range(0, len(test_rows), self.batch_size):
            rows = test_rows[s:s + self.batch_size]
            codes = self.index.codes[candidates[s:s + self.batch_size]]
            out[s:s + len(rows)] = code_logprobs(self.model, self.tok, [self.prompt(int(r)) for r in rows], codes,
                                                 self.map)
        return out


def alignment_questions(index, split: Split, max_questions: int = 500, seed: int = 0
                        ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Held-out 4-choice questions from the evaluation window: a future negative of a test user vs three of that
    user's positives. Returns prompts, the options' codes [Q, 4, L] and the index of the true answer."""
    rng = np.random.default_rng(seed)
    prompts, codes, truth = [], [], []
    for r in range(len(split.test)):
        t = split.test.iloc[r]
        pos = np.union1d(t["context_pos"], t["future_pos"])
        if len(pos) < 3 or len(t["future_neg"]) == 0:
            continue
        neg = int(rng.choice(t["future_neg"]))
        prompt, answer, shown = alignment_question(neg, rng.choice(pos, 3, replace=False), index.sid, rng)
        prompts.append(prompt)
        codes.append([index.codes[index.parse(s)] for s in shown])
        truth.append(shown.index(answer))
        if len(prompts) == max_questions:
            break
    return prompts, np.asarray(codes), np.asarray(truth)


def alignment_score(score, prompts: list[str], codes: np.ndarray, truth: np.ndarray) -> dict:
    """The alignment accuracy given `score(prompts, codes) -> log p [B, C]` (the model's answer is the option
    whose SID it finds most likely), wherever the model runs."""
    if not prompts:
        return {"alignment_acc": float("nan"), "n_alignment_questions": 0}
    lp = score(prompts, codes)
    return {"alignment_acc": float(np.mean(lp.argmax(1) == truth)), "n_alignment_questions": len(prompts)}


def alignment_accuracy(model, tok, index, split: Split, max_questions: int = 500, seed: int = 0) -> dict:
    """`alignment_score` of an HF model in this process."""
    from rollout.constrained import batched_code_logprobs
    from sid.tokens import SidTokenMap

    tmap = SidTokenMap(tok, index.level_sizes)
    return alignment_score(lambda p, c: batched_code_logprobs(model, tok, p, c, tmap),
                           *alignment_questions(index, split, max_questions, seed))
