"""A synthetic e-commerce feedback log with known negative interests (the embedded default data).

Items have a category, a brand, a colour and a price tier, a generated title and a second "image"
embedding modality. Users belong to taste archetypes that fix which categories they like and which
they dislike (ranked by intensity: the true negative interests). A recommender exposes items in
slots, day by day, mixing the user's learned affinities with exploration. A user who meets a
disliked category (or a low-quality item) gives explicit negative feedback; the system then never
shows that item again and, with `filter_similar`, hides its whole category for `filter_days` days.
The next negative therefore follows exposure order rather than the user's strongest dislike,
as the CoNRec paper observed on Taobao.

Every step is vectorised over users; deterministic by seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CATEGORIES = [
    ("running shoes", ["sneaker", "trainer", "runner"]), ("phone cases", ["case", "cover", "bumper"]),
    ("headphones", ["headset", "earbuds", "headphones"]), ("handbags", ["tote", "handbag", "clutch"]),
    ("watches", ["watch", "chronograph", "timepiece"]), ("skincare", ["serum", "moisturizer", "cleanser"]),
    ("cookware", ["pan", "skillet", "pot"]), ("toys", ["puzzle", "plush", "blocks"]),
    ("snacks", ["chips", "cookies", "nuts"]), ("coffee", ["beans", "espresso", "grinder"]),
    ("books", ["novel", "cookbook", "memoir"]), ("lamps", ["lamp", "lantern", "sconce"]),
    ("jackets", ["parka", "jacket", "windbreaker"]), ("dresses", ["dress", "gown", "sundress"]),
    ("pet food", ["kibble", "treats", "chews"]), ("tools", ["drill", "wrench", "screwdriver"]),
    ("gaming", ["controller", "keyboard", "mouse"]), ("jewelry", ["necklace", "ring", "bracelet"]),
    ("bedding", ["duvet", "pillow", "sheets"]), ("fitness", ["dumbbell", "yoga mat", "kettlebell"]),
    ("cameras", ["camera", "lens", "tripod"]), ("perfume", ["perfume", "cologne", "mist"]),
    ("luggage", ["suitcase", "backpack", "duffel"]), ("garden", ["hose", "planter", "shears"]),
    ("baby care", ["diapers", "stroller", "bottle"]), ("stationery", ["notebook", "pen", "planner"]),
    ("wine", ["merlot", "riesling", "rose"]), ("socks", ["socks", "stockings", "liners"]),
    ("sunglasses", ["sunglasses", "shades", "aviators"]), ("kitchen gadgets", ["peeler", "timer", "scale"]),
    ("cleaning", ["mop", "sponge", "detergent"]), ("bikes", ["bike", "helmet", "saddle"]),
]
COLOURS = ["black", "white", "red", "blue", "green", "grey", "pink", "beige", "navy", "gold", "silver", "brown"]
TIERS = ["budget", "value", "standard", "premium", "luxury"]
ADJECTIVES = ["classic", "compact", "deluxe", "eco", "lightweight", "pro", "soft", "smart", "vintage", "wireless"]
SYLLABLES = ["ka", "lo", "mi", "ze", "ta", "ru", "no", "vi", "pe", "sa", "do", "fi", "ge", "ho", "ju", "xa"]
DAY = 86_400


@dataclass
class SimConfig:
    """Simulator knobs. `users`, `items`, `days` and `seed` are the usual spec options."""

    users: int = 2000
    items: int = 3000
    days: int = 60
    seed: int = 0
    categories: int = 24
    """Number of item categories (at most 32)."""
    brands: int = 40
    archetypes: int = 8
    """User taste archetypes: users of one archetype share most likes and dislikes (collaborative signal)."""
    dislikes_per_user: int = 4
    likes_per_user: int = 3
    slots_per_day: int = 6
    """Exposure slots per active user per day."""
    active_prob: float = 0.35
    """Chance that a user visits on a given day."""
    explore: float = 0.35
    """Share of exposures the recommender spends on categories outside the user's learned affinity."""
    p_negative: float = 0.6
    """Chance of explicit negative feedback on the user's strongest disliked category (scaled by intensity)."""
    p_bad_item: float = 0.25
    """Extra negative chance on a low-quality item, for any user."""
    bad_item_share: float = 0.05
    p_positive: float = 0.35
    p_neutral: float = 0.15
    """Chance that an exposure with no strong reaction is logged as a neutral interaction."""
    filter_similar: bool = True
    """After a negative, also hide that item's whole category from the user for `filter_days` days."""
    filter_days: int = 3
    image_dim: int = 16
    start_ts: int = 1_700_006_400


def _items(cfg: SimConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    C = cfg.categories
    n = cfg.items
    cat = rng.integers(0, C, n)
    cat[:C] = np.arange(C)[: min(C, n)]  # every category has at least one item
    brand = rng.integers(0, cfg.brands, n)
    colour = rng.integers(0, len(COLOURS), n)
    tier = rng.integers(0, len(TIERS), n)
    noun = rng.integers(0, 3, n)
    adj = rng.integers(0, len(ADJECTIVES), n)
    brand_names = np.array(["".join(rng.choice(SYLLABLES, 2)).capitalize() + rng.choice(["", "co", "x", "ia"])
                            for _ in range(cfg.brands)])
    cat_names = np.array([c[0] for c in CATEGORIES[:C]])
    nouns = np.array([c[1] for c in CATEGORIES[:C]])
    titles = [f"{brand_names[b]} {COLOURS[c]} {ADJECTIVES[a]} {nouns[k][m]}"
              for b, c, a, k, m in zip(brand, colour, adj, cat, noun)]
    text = [f"{t}, {TIERS[p]} {cat_names[k]}" for t, p, k in zip(titles, tier, cat)]
    # "image" modality: category and colour directions plus brand style and noise
    d = cfg.image_dim
    cat_vec, col_vec, brand_vec = (rng.normal(size=(k, d)) for k in (C, len(COLOURS), cfg.brands))
    img = cat_vec[cat] + 0.6 * col_vec[colour] + 0.4 * brand_vec[brand] + 0.3 * rng.normal(size=(n, d))
    img = (img / np.linalg.norm(img, axis=1, keepdims=True)).astype(np.float32)
    items = pd.DataFrame({
        "item_id": np.arange(1, n + 1, dtype=np.int64), "title": titles, "text": text,
        "category": cat_names[cat], "brand": brand_names[brand], "colour": np.array(COLOURS)[colour],
        "price_tier": np.array(TIERS)[tier], "image_emb": list(img),
    })
    bad = rng.random(n) < cfg.bad_item_share
    return items, cat, bad


def _users(cfg: SimConfig, rng: np.random.Generator):
    C, U = cfg.categories, cfg.users
    nd, nl = cfg.dislikes_per_user, cfg.likes_per_user
    if nd + nl > C:
        raise ValueError(f"SimConfig: dislikes_per_user + likes_per_user ({nd + nl}) exceeds categories ({C})")
    # each archetype: an ordered dislike list and a like list, disjoint
    arch_perm = np.stack([rng.permutation(C) for _ in range(cfg.archetypes)])
    arch = rng.integers(0, cfg.archetypes, U)
    dislike = np.zeros((U, C))
    like = np.zeros((U, C))
    order = np.zeros((U, nd), dtype=np.int64)
    for u in range(U):  # cheap: U small loops of size C
        perm = arch_perm[arch[u]].copy()
        if rng.random() < 0.5:  # personal twist: swap one disliked category with a neutral one
            a, b = rng.integers(0, nd), rng.integers(nd + nl, C)
            perm[a], perm[b] = perm[b], perm[a]
        inten = np.sort(rng.uniform(0.25, 1.0, nd))[::-1]
        inten[0] = 1.0
        dl = perm[:nd][rng.permutation(nd)]  # the archetype's order is not the user's order
        dislike[u, dl] = inten
        order[u] = dl
        like[u, perm[nd:nd + nl]] = rng.uniform(0.5, 1.0, nl)
    return arch, dislike, like, order


def simulate(cfg: SimConfig | None = None):
    """Generate (events, items, truth) DataFrames. Events are in the schema of feedback/schema.py."""
    cfg = cfg or SimConfig()
    if cfg.categories > len(CATEGORIES):
        raise ValueError(f"SimConfig.categories is at most {len(CATEGORIES)}")
    if min(cfg.users, cfg.items, cfg.days) <= 0:
        raise ValueError("SimConfig: users, items and days must be positive")
    rng = np.random.default_rng(cfg.seed)
    items, item_cat, bad = _items(cfg, rng)
    arch, dislike, like, order = _users(cfg, rng)
    U, C, n_items = cfg.users, cfg.categories, cfg.items

    # items grouped by category; within a category, Zipf-like popularity
    by_cat = np.argsort(item_cat, kind="stable")
    counts = np.bincount(item_cat, minlength=C)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pop = 1.0 / (1 + rng.permutation(n_items)) ** 0.6
    w = pop[by_cat]
    seg_cdf = np.empty(n_items)
    for c in range(C):
        s, e = starts[c], starts[c] + counts[c]
        seg_cdf[s:e] = c + np.cumsum(w[s:e]) / w[s:e].sum()  # category c's cdf lives in (c, c+1]
    cat_pop = counts / counts.sum()

    affinity = np.ones((U, C))  # the recommender's learned view of each user
    blocked_until = np.full((U, C), -1, dtype=np.int64)
    neg_keys = np.empty(0, dtype=np.int64)  # user*n_items + item, items never shown again
    out_u, out_i, out_t, out_f = [], [], [], []
    slot_len = DAY // cfg.slots_per_day
    for day in range(cfg.days):
        active = np.flatnonzero(rng.random(U) < cfg.active_prob)
        if len(active) == 0:
            continue
        for slot in range(cfg.slots_per_day):
            u = active
            aff = affinity[u] / affinity[u].sum(1, keepdims=True)
            p = (1 - cfg.explore) * aff + cfg.explore * cat_pop
            if cfg.filter_similar:
                p = p * (blocked_until[u] < day)
            tot = p.sum(1, keepdims=True)
            ok = tot[:, 0] > 0
            u, p = u[ok], p[ok] / tot[ok]
            c = (rng.random((len(u), 1)) > np.cumsum(p, 1)).sum(1).clip(max=C - 1)
            it = by_cat[np.searchsorted(seg_cdf, c + rng.random(len(u)) * (1 - 1e-12) + 1e-12).clip(max=n_items - 1)]
            keys = u * n_items + it
            fresh = ~np.isin(keys, neg_keys)
            u, it, c, keys = u[fresh], it[fresh], item_cat[it[fresh]], keys[fresh]
            r = rng.random(len(u))
            p_neg = np.clip(cfg.p_negative * dislike[u, c] + cfg.p_bad_item * bad[it], 0, 1)
            p_pos = (1 - p_neg) * cfg.p_positive * like[u, c] / max(like.max(), 1e-9)
            fb = np.where(r < p_neg, -1, np.where(r < p_neg + p_pos, 1, 0))
            logged = (fb != 0) | (rng.random(len(u)) < cfg.p_neutral)
            ts = cfg.start_ts + day * DAY + slot * slot_len + rng.integers(0, slot_len, len(u))
            for out, x in ((out_u, u), (out_i, it), (out_t, ts), (out_f, fb)):
                out.append(x[logged])
            neg = fb == -1
            if neg.any():
                neg_keys = np.union1d(neg_keys, keys[neg])
                if cfg.filter_similar:
                    blocked_until[u[neg], c[neg]] = day + cfg.filter_days
            pos = fb == 1
            np.add.at(affinity, (u[pos], c[pos]), 1.0)

    labels = np.array(["negative", "neutral", "positive"])
    f = np.concatenate(out_f)
    events = pd.DataFrame({
        "user_id": np.concatenate(out_u).astype(np.int64) + 1,
        "item_id": items["item_id"].to_numpy()[np.concatenate(out_i)],
        "timestamp": np.concatenate(out_t).astype(np.int64),
        "feedback": labels[f + 1],
        "exposed": np.ones(len(f), dtype=bool),
        "reason": np.where(f == -1, "explicit_dislike", np.where(f == 1, "purchase", "click")),
    })
    events = events.drop_duplicates(["user_id", "item_id", "timestamp"]).reset_index(drop=True)
    cat_names = np.array([c[0] for c in CATEGORIES[:C]])
    seen = np.unique(events["user_id"].to_numpy()) - 1
    truth = pd.DataFrame({
        "user_id": seen + 1,
        "archetype": arch[seen],
        "neg_interests": [list(cat_names[order[u]]) for u in seen],
        "neg_intensity": [list(dislike[u, order[u]]) for u in seen],
    })
    return events, items, truth
