"""Semantic IDs: trie, collisions, codebook embeddings, RQ-VAE, the build and its bad inputs."""

import itertools

import numpy as np
import pandas as pd
import pytest

from sid.build import SidConfig, build_sids, coherence, level_stats
from sid.collisions import count_collisions, extra_level, reassign_last_level, resolve
from sid.encode import EncoderConfig, encode_items, encode_text_hashing
from sid.index import SidIndex
from sid.rqvae import RQVAEConfig, train_rqvae
from sid.vocab import SidTrie, code_to_str, sid_tokens, str_to_code


def test_trie_accepts_exactly_the_catalogue_prefix_by_prefix():
    rng = np.random.default_rng(0)
    sizes = (4, 3, 5)
    codes = np.unique(rng.integers(0, 4, (40, 3)) % np.array(sizes), axis=0)
    trie = SidTrie(codes)
    catalogue = {tuple(c) for c in codes.tolist()}
    for lvl in range(3):
        prefixes = {c[:lvl] for c in catalogue}
        # every prefix's children are exactly the catalogue's continuations
        for p in itertools.product(*(range(s) for s in sizes[:lvl])):
            want = sorted({c[lvl] for c in catalogue if c[:lvl] == p})
            assert trie.next_values(p).tolist() == want, p
            assert (p in prefixes) == bool(want)
    for c in itertools.product(*(range(s) for s in sizes)):
        assert (trie.item(c) is not None) == (c in catalogue)
    assert len(trie) == len(codes)
    assert trie.next_values(tuple(codes[0])).size == 0  # a full code has no continuation


def test_trie_rejects_collisions():
    with pytest.raises(ValueError, match="resolve collisions first"):
        SidTrie(np.array([[1, 2], [1, 2]]))


def test_sid_strings():
    assert code_to_str([12, 5, 201]) == "<a_12><b_5><c_201>"
    assert str_to_code("<a_12><b_5><c_201>", 3) == (12, 5, 201)
    assert str_to_code("<a_12> <b_5> <c_201>", 3) == (12, 5, 201)
    assert str_to_code("<a_12><c_5><b_201>", 3) is None  # levels out of order
    assert str_to_code("<a_12><b_5>", 3) is None
    assert str_to_code("<a_12><b_5><c_1>x", 3) is None
    assert sid_tokens([2, 1]) == ["<a_0>", "<a_1>", "<b_0>"]


def test_extra_level_hand_computed():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    assert extra_level(codes).tolist() == [[1, 2, 0], [1, 2, 1], [0, 0, 0], [1, 2, 2]]
    assert count_collisions(codes) == 2


def test_reassign_moves_the_farther_item_to_the_nearest_free_code():
    cb = np.array([[0.0], [1.0], [2.0], [3.0]])  # last-level codewords
    codes = np.array([[0, 1], [0, 1], [1, 1]])
    res = np.array([[1.1], [1.4], [1.0]])  # item 0 is closer to codeword 1 than item 1
    out = reassign_last_level(codes, res, cb)
    # item 1 moves to its nearest free code under prefix (0,): codeword 2 (|1.4-2| < |1.4-0|)
    assert out.tolist() == [[0, 1], [0, 2], [1, 1]]
    assert count_collisions(out) == 0


def test_reassign_falls_back_to_extra_level_when_a_prefix_is_full():
    cb = np.array([[0.0], [1.0]])
    codes = np.array([[0, 0], [0, 1], [0, 1]])  # prefix (0,) already uses both last-level codes
    out, method = resolve(codes, np.zeros((3, 1)), cb, "reassign")
    assert method == "extra_level" and out.shape == (3, 3) and count_collisions(out) == 0


def test_embed_is_sum_of_codewords():
    cb = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    idx = SidIndex(np.array([10, 20]), np.array([[0, 1], [2, 2]]), cb)
    np.testing.assert_allclose(idx.item_embeddings[0], cb[0, 0] + cb[1, 1])
    np.testing.assert_allclose(idx.embed(np.array([2, 0])), cb[0, 2] + cb[1, 0])
    assert idx.parse("<a_2><b_2>") == 1 and idx.parse("<a_1><b_1>") is None and idx.parse("junk") is None
    with pytest.raises(ValueError, match="does not match the catalogue"):
        idx.check_catalogue([10, 30])


def test_level_stats_and_coherence():
    util, perp = level_stats(np.array([[0, 0], [0, 1], [1, 1], [1, 1]]), [4, 2])
    assert util == [0.5, 1.0]
    assert perp[0] == pytest.approx(2.0)
    assert perp[1] == pytest.approx(np.exp(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))))
    c = coherence(np.array([0, 0, 1, 1]), [{"x"}, {"x"}, {"y"}, {"y"}], 200)
    assert c["same_code_pairs"] == 1.0 and 0 < c["random_pairs"] < 1


def test_rqvae_deterministic_and_learns():
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    cfg = RQVAEConfig(levels=2, codebook_size=16, latent_dim=8, hidden_dims=[32], epochs=15, batch_size=64,
                      progress=False)
    m1, h1 = train_rqvae(x, cfg)
    m2, h2 = train_rqvae(x, cfg)
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]
    assert h1[-1]["recon"] < h1[0]["recon"]
    import torch

    c1, _ = m1.encode_codes(torch.from_numpy(x))
    assert c1.shape == (300, 2) and c1.max() < 16


def _items(n=200):
    rng = np.random.default_rng(1)
    cats = np.array(["shoes", "books", "lamps", "toys"])[rng.integers(0, 4, n)]
    return pd.DataFrame({"item_id": np.arange(n), "title": [f"{c} model {i}" for i, c in enumerate(cats)],
                         "category": cats, "img": list(rng.normal(size=(n, 4)))})


def test_build_end_to_end(tmp_path):
    cfg = SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
                    rqvae=RQVAEConfig(levels=2, codebook_size=8, latent_dim=8, hidden_dims=[32], epochs=20,
                                      progress=False))
    index, rep = build_sids(_items(), ["category"], cfg, tmp_path)
    assert rep["collisions_after"] == 0
    assert set(rep["input"]) == {"text:hashing", "categorical:category", "embedding:img"}
    assert rep["coherence"]["same_code_pairs"] > rep["coherence"]["random_pairs"]
    loaded = SidIndex.load(tmp_path)
    np.testing.assert_array_equal(loaded.codes, index.codes)
    assert all(loaded.parse(loaded.sid(i)) == i for i in range(len(loaded.codes)))
    assert {"sids.parquet", "codebooks.safetensors", "rqvae.safetensors", "vocab.json", "report.json"} <= {
        p.name for p in tmp_path.iterdir()}


def test_bad_item_inputs():
    items = _items(10)
    items.at[3, "img"] = np.array([np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match=r"column 'img', row 3: NaN or inf"):
        encode_items(items, [], EncoderConfig(text_encoder="none"))
    with pytest.raises(ValueError, match="every modality is off"):
        encode_items(_items(5)[["item_id", "title"]], [], EncoderConfig(text_encoder="none"))
    with pytest.raises(FileNotFoundError, match="not a SID folder"):
        SidIndex.load("/nonexistent")


def test_hashing_encoder_is_deterministic():
    a = encode_text_hashing(["red shoe", "blue lamp"], 64)
    np.testing.assert_array_equal(a, encode_text_hashing(["red shoe", "blue lamp"], 64))
    assert np.allclose(np.linalg.norm(a, axis=1), 1)


def test_movielens_sids_real_encoder(ml100k, tmp_path):
    """The real MiniLM text encoder on MovieLens-100k titles: no collisions left, coherent first level."""
    from feedback.loaders import load

    data = load(f"movielens-100k:{ml100k}")
    cfg = SidConfig(encoder=EncoderConfig(progress=False), rqvae=RQVAEConfig(epochs=30, progress=False))
    index, rep = build_sids(data.items, data.category_columns, cfg, tmp_path)
    assert rep["collisions_after"] == 0 and rep["levels"] == 3
    assert rep["input"] == {"text:minilm": 384, "categorical:genres": 19}
    assert rep["coherence"]["same_code_pairs"] > rep["coherence"]["random_pairs"] + 0.2
    assert min(rep["utilization"]) > 0.5


def test_sid_token_map_and_its_table_agree():
    from sid.tokens import SidTokenMap
    from trainer.models import build_tokenizer

    tok = build_tokenizer(["user disliked"], ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "<b_2>"], vocab_size=300)
    m = SidTokenMap(tok, [2, 3])
    table = m.table(len(tok))
    assert [tuple(table[t]) for t in m.ids[1]] == [(1, 0), (1, 1), (1, 2)]
    assert (table[:, 0] >= 0).sum() == 5  # only the SID tokens map
    ids = [int(m.ids[0][1]), int(m.ids[1][2]), m.eos]
    assert m.decode(ids) == (1, 2) and m.prefix(ids[:1]) == (1,)


def test_prefix_column_puts_the_category_first_and_leaves_the_quantised_levels_alone(tmp_path):
    cfg = SidConfig(encoder=EncoderConfig(text_encoder="hashing", progress=False),
                    rqvae=RQVAEConfig(levels=2, codebook_size=8, latent_dim=8, hidden_dims=[32], epochs=20,
                                      progress=False))
    items = _items()
    items.loc[0, "category"] = "b|a"  # a list counts by its first entry
    plain, _ = build_sids(items, ["category"], cfg, None)
    cfg.prefix_column = "category"
    index, rep = build_sids(items, ["category"], cfg, tmp_path)
    values = sorted(set(items["category"].str.split("|").str[0]))
    want = [values.index(v.split("|")[0]) for v in items["category"]]
    np.testing.assert_array_equal(index.codes[:, 0], want)
    np.testing.assert_array_equal(index.codes[:, 1:], plain.codes)  # the same seed, the same quantiser codes
    np.testing.assert_allclose(index.item_embeddings, plain.item_embeddings)  # embeddings skip the prefix
    # 200 items on 8 x 8 codes: an extra collision level follows, as in the plain build
    assert index.level_sizes == [5, *plain.level_sizes] and rep["prefix"] == {"column": "category", "values": 5}
    loaded = SidIndex.load(tmp_path)
    assert loaded.prefix_levels == 1 and loaded.level_sizes == index.level_sizes
    np.testing.assert_allclose(loaded.item_embeddings, plain.item_embeddings)
    assert all(loaded.parse(loaded.sid(i)) == i for i in range(len(loaded.codes)))
    cfg.prefix_column = "colour"
    with pytest.raises(ValueError, match=r"sid.prefix_column='colour' is not an item column; the items have "
                                         r"\['category', 'img', 'item_id', 'title'\]"):
        build_sids(items, ["category"], cfg, None)
