"""Residual-quantised VAE: item vectors → L-level semantic codes.

Level 1 picks the nearest codeword of the encoder's latent, level 2 quantises what is left, and so
on; the decoder reconstructs the item vector from the sum of the chosen codewords. Loss:
reconstruction + per-level commitment β·‖r − sg(e)‖² (+ codebook term ‖sg(r) − e‖² when codebooks
learn by gradient; with EMA they track the assigned residuals instead). Codebooks start from k-means
of the first latents; a code unused for a whole epoch is reset to a random live residual.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from common.progress import progress

log = logging.getLogger(__name__)


@dataclass
class RQVAEConfig:
    """Shape and training of the quantiser (defaults: TIGER's 3 × 256, latent 32; EMA codebooks)."""

    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden_dims: list[int] = field(default_factory=lambda: [256, 128])
    beta: float = 0.25
    """Commitment weight."""
    codebook_update: str = "ema"
    """'ema' (exponential moving average of assigned residuals) or 'grad'."""
    ema_decay: float = 0.95
    kmeans_init: bool = True
    kmeans_iters: int = 25
    dead_code_reset: bool = True
    epochs: int = 150
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    progress: bool = True


def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Plain k-means with k-means++ seeding; returns k centroids (duplicates rows if len(x) < k)."""
    n = len(x)
    if n <= k:
        return x[torch.arange(k) % n].clone()
    cent = x[torch.randint(n, (1,), generator=gen)]
    d2 = torch.cdist(x, cent).squeeze(1) ** 2
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / n)
        nxt = x[torch.multinomial(p, 1, generator=gen)]
        cent = torch.cat([cent, nxt])
        d2 = torch.minimum(d2, (torch.cdist(x, nxt).squeeze(1)) ** 2)
    for _ in range(iters):
        a = torch.cdist(x, cent).argmin(1)
        s = torch.zeros_like(cent).index_add_(0, a, x)
        c = torch.bincount(a, minlength=k).unsqueeze(1)
        cent = torch.where(c > 0, s / c.clamp(min=1), cent)
    return cent


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, cfg: RQVAEConfig):
        super().__init__()
        self.cfg = cfg
        dims = [in_dim, *cfg.hidden_dims, cfg.latent_dim]
        enc, dec = [], []
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        for a, b in zip(dims[::-1][:-1], dims[::-1][1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*enc[:-1])
        self.decoder = nn.Sequential(*dec[:-1])
        cb = torch.randn(cfg.levels, cfg.codebook_size, cfg.latent_dim) * 0.1
        if cfg.codebook_update == "grad":
            self.codebooks = nn.Parameter(cb)
        elif cfg.codebook_update == "ema":
            self.register_buffer("codebooks", cb)
            self.register_buffer("ema_count", torch.ones(cfg.levels, cfg.codebook_size))
            self.register_buffer("ema_sum", cb.clone())
        else:
            raise ValueError(f"RQVAEConfig.codebook_update must be 'ema' or 'grad', got {cfg.codebook_update!r}")

    def quantise(self, z: torch.Tensor):
        """Codes [B, L], per-level residual inputs [L, B, D], per-level chosen codewords [L, B, D]."""
        r = z
        codes, residuals, chosen = [], [], []
        for lvl in range(self.cfg.levels):
            cb = self.codebooks[lvl]
            idx = torch.cdist(r.detach(), cb.detach()).argmin(1)
            e = cb[idx]
            codes.append(idx)
            residuals.append(r)
            chosen.append(e)
            r = r - e.detach()
        return torch.stack(codes, 1), torch.stack(residuals), torch.stack(chosen)

    def forward(self, x: torch.Tensor):
        z = self.encoder(x)
        codes, residuals, chosen = self.quantise(z)
        q = chosen.sum(0)
        zq = z + (q - z).detach()  # straight-through estimator
        x_hat = self.decoder(zq)
        recon = ((x_hat - x) ** 2).mean()
        commit = ((residuals - chosen.detach()) ** 2).mean(dim=(1, 2)).sum()
        loss = recon + self.cfg.beta * commit
        if self.cfg.codebook_update == "grad":
            loss = loss + ((residuals.detach() - chosen) ** 2).mean(dim=(1, 2)).sum()
        return loss, recon, codes, residuals.detach()

    @torch.no_grad()
    def ema_update(self, codes: torch.Tensor, residuals: torch.Tensor) -> None:
        d, K = self.cfg.ema_decay, self.cfg.codebook_size
        for lvl in range(self.cfg.levels):
            onehot_count = torch.bincount(codes[:, lvl], minlength=K).float()
            s = torch.zeros_like(self.ema_sum[lvl]).index_add_(0, codes[:, lvl], residuals[lvl])
            self.ema_count[lvl].mul_(d).add_(onehot_count, alpha=1 - d)
            self.ema_sum[lvl].mul_(d).add_(s, alpha=1 - d)
            n = self.ema_count[lvl].sum()
            count = (self.ema_count[lvl] + 1e-5) / (n + K * 1e-5) * n  # Laplace smoothing
            self.codebooks[lvl].copy_(self.ema_sum[lvl] / count.unsqueeze(1))

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, gen: torch.Generator) -> None:
        r = self.encoder(x)
        for lvl in range(self.cfg.levels):
            c = kmeans(r, self.cfg.codebook_size, self.cfg.kmeans_iters, gen)
            self.codebooks[lvl].copy_(c)
            if self.cfg.codebook_update == "ema":
                self.ema_sum[lvl].copy_(c)
                self.ema_count[lvl].fill_(1.0)
            r = r - c[torch.cdist(r, c).argmin(1)]

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor, batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Codes [N, L] (int64) and the per-level residuals entering the last level [N, D]."""
        codes, last_res = [], []
        for s in range(0, len(x), batch):
            c, res, _ = self.quantise(self.encoder(x[s:s + batch]))
            codes.append(c)
            last_res.append(res[-1])
        return torch.cat(codes).numpy(), torch.cat(last_res).numpy()


def train_rqvae(x: np.ndarray, cfg: RQVAEConfig | None = None) -> tuple[RQVAE, list[dict]]:
    """Train on item vectors x [N, d]; deterministic by cfg.seed. Returns the model and per-epoch stats."""
    cfg = cfg or RQVAEConfig()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    X = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    model = RQVAE(X.shape[1], cfg)
    if cfg.kmeans_init:
        sample = X[torch.randperm(len(X), generator=gen)[: max(cfg.codebook_size * 40, 4096)]]
        model.init_codebooks(sample, gen)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history = []
    bar = progress(cfg.epochs, "rq-vae epochs", enabled=cfg.progress)
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(X), generator=gen)
        used = torch.zeros(cfg.levels, cfg.codebook_size, dtype=torch.bool)
        tot = rec = 0.0
        for s in range(0, len(X), cfg.batch_size):
            xb = X[perm[s:s + cfg.batch_size]]
            loss, recon, codes, residuals = model(xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cfg.codebook_update == "ema":
                model.ema_update(codes, residuals)
            used[torch.arange(cfg.levels).unsqueeze(0).expand_as(codes), codes] = True
            tot += loss.item() * len(xb)
            rec += recon.item() * len(xb)
        resets = 0
        if cfg.dead_code_reset and epoch < cfg.epochs - 1:
            resets = _reset_dead(model, X, used, gen)
        history.append({"epoch": epoch, "loss": tot / len(X), "recon": rec / len(X), "dead_reset": resets,
                        "used": used.float().mean(1).tolist()})
        bar.set_postfix(loss=f"{tot / len(X):.4f}", resets=resets)
        bar.update(1)
    bar.close()
    return model, history


@torch.no_grad()
def _reset_dead(model: RQVAE, X: torch.Tensor, used: torch.Tensor, gen: torch.Generator) -> int:
    """Move every code unused this epoch onto a random residual of a sampled batch at its level."""
    n = 0
    sample = X[torch.randperm(len(X), generator=gen)[:4096]]
    _, residuals, _ = model.quantise(model.encoder(sample))
    for lvl in range(model.cfg.levels):
        dead = torch.nonzero(~used[lvl]).flatten()
        if len(dead) == 0:
            continue
        pick = residuals[lvl][torch.randint(len(sample), (len(dead),), generator=gen)]
        model.codebooks[lvl][dead] = pick
        if model.cfg.codebook_update == "ema":
            model.ema_sum[lvl][dead] = pick
            model.ema_count[lvl][dead] = 1.0
        n += len(dead)
    return n
