"""The Large Perturbation Model as torch modules, and its configuration.

LPM (Miladinovic et al. 2025) predicts one value per (context, perturbation, readout) triple: the
three embeddings are concatenated and passed through an MLP. Two things are added here:

1. Every embedding is a learned per-symbol vector (row 0 = "unknown", fixed at zero) PLUS a feature
   encoder (RDKit compound features + log-dose, a message-passing gene encoder over a prior gene
   graph, cell-line feature vectors), so symbols unseen in training still get an embedding.
2. The first Linear over [c; p; r] is split into W_c c + W_p p + W_r r: the (context,
   perturbation) part is computed once per pair, the readout part once per readout, and the two
   are broadcast-added. `forward_naive` keeps the plain concatenate-then-MLP path for tests and the
   benchmark; both share the same parameters.
3. By default (`LPMConfig.residual`) the network predicts only the deviation from the additive
   cross-context answer, `CrossContextBase` (the `other_contexts` baseline, from training data):
   prediction = base(c, p, r) + MLP([c; p; r]). Its sums and counts are buffers, so checkpoints carry them.
   Options (models/residual_base.py): `graph_base` (a knock-down seen in no other context starts from
   its gene-graph neighbours), `shrink_cross_base` (the copied profile shrunk by a fitted factor),
   `similar_contexts_base` (the other lines weighted as the `similar_contexts` baseline weights them),
   `similar_perturbations_base` (plus that baseline's term from the perturbations that respond alike).
   By default (`base_choice`) the base is the one of these whose predictions score best on validation.

Contexts and perturbations are addressed as rows of `SymbolTables` (built by the caller for any
names, seen or not); genes as *nodes* of the gene encoder (0-based: training readouts/targets plus
prior-graph genes; -1 = unknown gene outside the graph).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.residual_base import CrossContextBase, GraphBase


@dataclass
class LPMConfig:
    # Paper defaults (LINCS configuration).
    embed_dim: int = 128
    hidden_dim: int = 256
    num_layers: int = 2  # num_layers x [Linear, ReLU, Dropout], then Linear(hidden, 1)
    dropout: float = 0.1
    lr: float = 2e-3
    lr_decay: float = 0.97  # ExponentialLR gamma, stepped once per epoch
    weight_decay: float = 0.01  # AdamW decoupled decay: not stated in the paper; torch's AdamW default, and it
    # helped on Tahoe unseen experiments (per-signature r 0.831 vs 0.824 at 0.0, seed 0)
    batch_triples: int = 1000  # observed triples per step (approximately: batches are pair x readout tiles)
    max_epochs: int = 50
    patience: int = 5  # epochs without validation improvement before stopping
    # Per batch, each perturbation member that an encoder can describe (a parsed structure, or targets)
    # loses its learned vector with this probability, so the encoders learn to speak for it alone,
    # as they must for a compound or gene never seen in training. 0 = off (the paper has no encoders).
    symbol_dropout: float = 0.0
    # Encoders beyond the paper; all False = the paper model (`LPMConfig.paper()`).
    use_compound_encoder: bool = True
    use_gene_graph: bool = True
    use_targets: bool = True  # genetic perturbations add the (shared) gene encoding of their targets
    use_context_features: bool = True
    fp_bits: int = 1024
    fp_radius: int = 2
    encoder_hidden: int = 256
    gnn_layers: int = 1
    # "bf16": the training forward under torch.autocast(bfloat16) (weights, optimizer, loss and validation
    # stay float32); about 1.1x more triples per CPU-second at the paper config on an AVX512-BF16 CPU
    # at equal validation accuracy (docs/benchmarks.md, "lpm_paper on the Tahoe A498 benchmark").
    precision: str = "fp32"
    # Learn the deviation from CrossContextBase (context offset + the perturbation's mean in the other
    # training contexts) instead of the whole value. Default since it beat `other_contexts` on Tahoe A498
    # unseen experiments by >= 0.01 per-signature r on 4 of 5 seeds (docs/results.md, "Research: residual LPM").
    residual: bool = True
    # Issue 17, H1 (needs residual, use_targets and a gene graph): a knock-down measured in no other
    # training context starts from its gene-graph neighbours' mean profile in the same context
    # (models/residual_base.GraphBase) instead of the context mean. shrink None = least squares on
    # training rows. graph_base_dropout: the share of training knock-down experiments that also train
    # as if unseen (learned vector dropped, graph base), so the network learns the residual it will
    # be asked for on a held-out gene.
    graph_base: bool = False
    graph_base_shrink: float | None = None
    graph_base_dropout: float = 0.5
    # Issue 17, H4 (with graph_base): network_knn's estimator as the graph term, added to every knock-down's
    # base (weighted neighbours, count prior and an unclipped shrink chosen on validation rows).
    graph_base_knn: bool = False
    # Issue 17, H2: a knock-down's embedding adds a projection of the mean learned vector of its
    # gene-graph neighbours' knock-downs (never its own), so a held-out gene borrows theirs.
    neighbour_embedding: bool = False
    # The cross-context base's own-perturbation term times a shrink fitted on training rows (least
    # squares, leave-own-out): where copying another line is worse than the context mean (Replogle
    # K562 -> RPE1) the base leans to the context mean; 1 = the other_contexts baseline. On by default
    # since 2026-12-01 (docs/results.md, "Research: residual LPM"): Tahoe A498 +0.003 r over the
    # unshrunk base (fitted shrink ~0.94), Replogle RPE1 +0.12 (shrink ~0.12).
    shrink_cross_base: bool = True
    # Issue 17, many contexts: the cross-context base's own term is the `similar_contexts` baseline's (other
    # lines weighted by a ridge regression of the line on them, ridge chosen on validation rows) instead of
    # the equal-weight mean; the network learns the deviation from that. Off until measured.
    similar_contexts_base: bool = False
    # ... plus the `similar_perturbations` baseline's neighbour term (what the training perturbations that
    # respond most like p in the other lines did differently in this line; its K and strength chosen on
    # validation rows); needs similar_contexts_base. A candidate of base_choice = "validation".
    similar_perturbations_base: bool = False
    # Issue 17, H5 (train for the metric it is judged on, mean per-signature r, which ignores each signature's
    # offset and scale). stop_metric: the validation quantity early stopping keeps the best epoch of and counts
    # patience on: "mse" or "pearson_per_signature" (of base + network). signature_weights: each (context,
    # perturbation) experiment's squared errors weighted by 1 / (variance of its values across readouts +
    # floor x the mean such variance), mean 1 over cells (models/train.signature_weights), in the training
    # loss and the validation loss alike. Both off: measured on Tahoe (docs/results.md, "H5"), r stopping helps
    # the default on 4 of 7 splits and loses a little on 2; signature weights alone hurt; Replogle unmeasured.
    stop_metric: str = "mse"
    signature_weights: bool = False
    signature_weight_floor: float = 0.1
    # Issue 17, H7: per-step decay of a bias-corrected moving average of the parameters (models/train.ParamEMA);
    # validation, early stopping and the final model use the average. 0 = off: 0.99 (chosen on validation) was
    # +0.001 r on 10-line A498 (5/5 seeds) but lower on 2/5 seeds of 37-line A498 (docs/results.md, "H7").
    ema_decay: float = 0.0
    # Issue 17: "validation" = before training, a residual LPM fits every base that applies to the data
    # (cross-context; similar_contexts' weighted lines with >= 2 contexts, alone or with similar_perturbations'
    # neighbour term; network_knn's graph term with knock-downs in the gene graph; the weighted ones with it),
    # keeps the one whose predictions alone score the best mean per-signature r on the validation rows
    # (models/lpm.BASE_CANDIDATES) and sets the base flags above
    # to it (the saved config holds the chosen flags); "fixed" = the flags as given; "trained" = one LPM per
    # base, the best on validation kept (k fits). "validation" is the default since 2026-12-01: over the
    # cross-context base, 5 seeds, about +0.010 r on 37-line Tahoe A498, +0.005 LOVO, +0.021 Replogle RPE1, +0.042
    # unseen gene (= the best fixed base there); -0.005 / -0.004 on 10-line A498 / HEC1A (docs/results.md,
    # "Research: the residual base chosen on validation").
    base_choice: str = "validation"

    @classmethod
    def paper(cls, **overrides) -> LPMConfig:
        """The published LPM: learned embeddings only, no feature encoders, the whole value."""
        base = dict(use_compound_encoder=False, use_gene_graph=False, use_targets=False, use_context_features=False,
                    residual=False)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


class Dropout(nn.Module):
    """Inverted dropout with a cheap mask: each 64-bit random draw gives four 16-bit uniforms, so p
    is kept to 1/65536. On this CPU the draws for a (1000, 256) mask take 0.45 ms, against 1.4 ms
    for one int16 draw per unit and 1.8 ms for torch.rand (nn.Dropout's Bernoulli sampler was a
    quarter of a training step)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {p}")
        self.p = p
        self.cut = round(p * 65536)  # drop a unit when its 16-bit uniform, read as signed, is below cut - 32768

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.cut - 32768
        return x * keep * (65536 / (65536 - self.cut))


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))


def _pyg():
    """torch_geometric's GraphConv and k_hop_subgraph (pure PyTorch scatter path, no torch-scatter).
    Its import runs torch.jit.script, which warns a deprecation the user cannot act on: silenced here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\.script.*")
        from torch_geometric.nn import GraphConv
        from torch_geometric.utils import k_hop_subgraph
    return GraphConv, k_hop_subgraph


class GeneEncoder(nn.Module):
    """Learned gene vectors + mean-aggregation message passing over the prior gene graph.

    A gene node's embedding is its own vector plus the GNN output at that node. Genes without a
    learned vector (graph-only or unseen) have a zero input row, so their embedding comes from
    their neighbours. Only the L-hop subgraph around the queried nodes is computed; with mean
    aggregation (GraphConv, weighted) that is exact for the queried nodes.
    """

    def __init__(self, n_genes: int, node_sym: torch.Tensor, edge_index: torch.Tensor,
                 edge_weight: torch.Tensor, d: int, n_layers: int, use_graph: bool):
        super().__init__()
        self.emb = nn.Embedding(n_genes + 1, d, padding_idx=0)  # row 0: unknown gene
        self.register_buffer("node_sym", node_sym.long())  # (G,) node -> learned vector row (0 = none)
        self.register_buffer("edge_index", edge_index.long())  # (2, E) both directions
        self.register_buffer("edge_weight", edge_weight.float())  # (E,)
        self.use_graph = use_graph
        self.convs = nn.ModuleList()
        if use_graph:
            graph_conv, _ = _pyg()
            self.convs.extend(graph_conv(d, d, aggr="mean") for _ in range(n_layers))

    @property
    def n_nodes(self) -> int:
        return self.node_sym.shape[0]

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """nodes (B,) gene node ids, -1 = unknown and not in the graph -> (B, d); -1 rows are zero."""
        out = self.emb.weight.new_zeros(nodes.shape[0], self.emb.embedding_dim)  # (B, d)
        valid = nodes >= 0
        nv = nodes[valid]
        x = self.emb(self.node_sym[nv])  # (b, d)
        if self.use_graph and nv.numel():
            uniq, inv = torch.unique(nv, return_inverse=True)
            _, k_hop_subgraph = _pyg()
            subset, ei, mapping, emask = k_hop_subgraph(
                uniq, len(self.convs), self.edge_index, relabel_nodes=True, num_nodes=self.n_nodes)
            h = self.emb(self.node_sym[subset])  # (S, d)
            w = self.edge_weight[emask]  # (E_sub,)
            for i, conv in enumerate(self.convs):
                h = conv(h, ei, w)
                if i < len(self.convs) - 1:
                    h = F.relu(h)
            x = x + h[mapping][inv]  # (b, d)
        out[valid] = x
        return out


@dataclass
class SymbolTables:
    """Features of the context / perturbation symbols a batch may refer to; row 0 = unknown / padding.

    Built by the caller for any name list (training, validation, unseen names): `*_sym` maps a row
    to its learned vector (0 = none, i.e. only the feature encoder speaks for it).
    """

    ctx_sym: torch.Tensor  # (Nc,) long
    ctx_feat: torch.Tensor  # (Nc, Fc)
    mem_sym: torch.Tensor  # (Nm,) long; members = single perturbations
    mem_comp: torch.Tensor  # (Nm, Fp) standardised compound features, last column = "parsed" flag
    mem_dose: torch.Tensor  # (Nm, 2) [log10 uM, has_dose]
    mem_targets: torch.Tensor  # (Nm, T) gene nodes, -1 pad
    pert_members: torch.Tensor  # (Np, M) member rows, 0 pad
    mem_nb: torch.Tensor | None = None  # (Nm, Kn) learned vectors of the graph-neighbour knock-downs, 0 pad

    def to(self, device) -> SymbolTables:
        return SymbolTables(**{k: None if v is None else v.to(device) for k, v in self.__dict__.items()})

    def target_nodes(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (U,) perturbation rows -> (U, M*T) gene nodes targeted by their members, -1 pad."""
        return self.mem_targets[self.pert_members[rows]].flatten(1)

    def with_unseen_copies(self, rows: torch.Tensor) -> tuple[SymbolTables, torch.Tensor]:
        """Append a copy of each perturbation row whose members have no learned vector (as if never
        seen: only the encoders speak). Returns the tables and the (U,) rows of the copies."""
        members = self.pert_members[rows]  # (U, M)
        uniq, inv = torch.unique(members[members > 0], return_inverse=True)
        new_mem = torch.zeros_like(members)
        new_mem[members > 0] = inv + len(self.mem_sym)  # appended member rows
        cat = torch.cat
        t = SymbolTables(self.ctx_sym, self.ctx_feat, cat([self.mem_sym, torch.zeros_like(uniq)]),
                         cat([self.mem_comp, self.mem_comp[uniq]]), cat([self.mem_dose, self.mem_dose[uniq]]),
                         cat([self.mem_targets, self.mem_targets[uniq]]), cat([self.pert_members, new_mem]),
                         None if self.mem_nb is None else cat([self.mem_nb, self.mem_nb[uniq]]))
        return t, torch.arange(len(self.pert_members), len(t.pert_members))


class LPMModule(nn.Module):
    def __init__(self, cfg: LPMConfig, *, n_contexts: int, n_members: int, n_genes: int,
                 ctx_feat_dim: int, comp_feat_dim: int, gene_node_sym: torch.Tensor,
                 edge_index: torch.Tensor, edge_weight: torch.Tensor, n_perturbations: int = 0,
                 kd_nodes: torch.Tensor | None = None, kd_of_pert: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        # Residual LPM: filled by the caller from training rows (vocabulary indices), see LPM.fit.
        self.base = (CrossContextBase(n_contexts, n_perturbations, n_genes, cfg.shrink_cross_base,
                                      cfg.similar_contexts_base, cfg.similar_perturbations_base)
                     if cfg.residual else None)
        self.graph_base = None  # kd_nodes (K+1, T), kd_of_pert (P+1,): the training knock-downs' targets
        if cfg.residual and cfg.graph_base:
            self.graph_base = GraphBase(n_contexts, n_genes, kd_nodes, kd_of_pert, cfg.graph_base_knn)
        d, H = cfg.embed_dim, cfg.hidden_dim
        self.ctx_emb = nn.Embedding(n_contexts + 1, d, padding_idx=0)  # row 0: unknown, stays zero
        self.mem_emb = nn.Embedding(n_members + 1, d, padding_idx=0)
        self.genes = GeneEncoder(n_genes, gene_node_sym, edge_index, edge_weight, d, cfg.gnn_layers, cfg.use_gene_graph)
        Fc, Fp = ctx_feat_dim, comp_feat_dim
        self.ctx_encoder = mlp(Fc, cfg.encoder_hidden, d) if cfg.use_context_features and Fc else None
        self.comp_encoder = mlp(Fp + 2, cfg.encoder_hidden, d) if cfg.use_compound_encoder and Fp else None
        self.target_proj = nn.Linear(d, d) if cfg.use_targets else None
        self.nb_proj = nn.Linear(d, d) if cfg.neighbour_embedding else None

        # Head: first Linear over [c; p; r] (used split), then the rest of the MLP.
        self.first = nn.Linear(3 * d, H)
        rest: list[nn.Module] = [nn.ReLU(), Dropout(cfg.dropout)]
        for _ in range(cfg.num_layers - 1):
            rest += [nn.Linear(H, H), nn.ReLU(), Dropout(cfg.dropout)]
        rest.append(nn.Linear(H, 1))
        self.rest = nn.Sequential(*rest)

    # ---- encoders at the feature level (used for unseen symbols) ----
    def context_repr(self, sym: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """sym (B,) vocab index (0 = unknown), feat (B, Fc) -> (B, d)."""
        c = self.ctx_emb(sym)
        if self.ctx_encoder is not None:
            c = c + self.ctx_encoder(feat)
        return c

    def member_repr(self, sym: torch.Tensor, comp: torch.Tensor, dose: torch.Tensor,
                    targets: torch.Tensor, nbrs: torch.Tensor | None = None) -> torch.Tensor:
        """One (non-combination) perturbation: sym (B,), comp (B, Fp), dose (B, 2), targets (B, T),
        nbrs (B, Kn) neighbours' learned-vector rows -> (B, d)."""
        p = self.mem_emb(sym)  # (B, d)
        if self.nb_proj is not None and nbrs is not None and nbrs.numel():
            n = (nbrs > 0).sum(1, keepdim=True)  # (B, 1); row 0 of mem_emb is zero
            p = p + (n > 0).to(p.dtype) * self.nb_proj(self.mem_emb(nbrs).sum(1) / n.clamp(min=1))
        if self.comp_encoder is not None:
            # Only rows with a structure or a dose get a compound term; genetic ones get none.
            has = ((comp[:, -1] > 0) | (dose[:, 1] > 0)).unsqueeze(1).to(p.dtype)  # (B, 1); comp[:, -1] = parsed flag
            p = p + has * self.comp_encoder(torch.cat([comp, dose], dim=1))
        if self.target_proj is not None and targets.numel():
            tmask = targets >= 0  # (B, T)
            g = self.genes(targets.clamp(min=0).reshape(-1)).view(*targets.shape, -1)  # (B, T, d)
            n = tmask.sum(1, keepdim=True)  # (B, 1)
            gm = (g * tmask.unsqueeze(-1)).sum(1) / n.clamp(min=1)  # (B, d) mean over targets
            p = p + (n > 0).to(p.dtype) * self.target_proj(gm)
        return p

    @staticmethod
    def combine(pos: torch.Tensor, valid: torch.Tensor, member_emb: torch.Tensor) -> torch.Tensor:
        """pos (B, M) rows into member_emb (N, d), valid (B, M) -> (B, d): a combination is the mean of its members."""
        m = valid.unsqueeze(-1).to(member_emb.dtype)  # (B, M, 1)
        return (member_emb[pos] * m).sum(1) / m.sum(1).clamp(min=1)

    # ---- encoders over symbol tables (rows) ----
    def embed_contexts(self, t: SymbolTables, idx: torch.Tensor) -> torch.Tensor:
        return self.context_repr(t.ctx_sym[idx], t.ctx_feat[idx])  # (B, d)

    def embed_perturbations(self, t: SymbolTables, idx: torch.Tensor) -> torch.Tensor:
        members = t.pert_members[idx]  # (B, M)
        uniq, inv = torch.unique(members, return_inverse=True)  # embed each member once
        sym, comp, targets = t.mem_sym[uniq], t.mem_comp[uniq], t.mem_targets[uniq]  # (U,), (U, Fp), (U, T)
        if self.training and self.cfg.symbol_dropout > 0:
            described = torch.zeros_like(sym, dtype=torch.bool)  # (U,)
            if self.comp_encoder is not None:
                described |= comp[:, -1] > 0
            if self.target_proj is not None and targets.numel():
                described |= (targets >= 0).any(1)
            drop = described & (torch.rand(sym.shape, device=sym.device) < self.cfg.symbol_dropout)
            sym = sym.masked_fill(drop, 0)
        nbrs = None if t.mem_nb is None else t.mem_nb[uniq]
        e = self.member_repr(sym, comp, t.mem_dose[uniq], targets, nbrs)  # (U, d)
        return self.combine(inv.view_as(members), members > 0, e)  # (B, d)

    def embed_readouts(self, nodes: torch.Tensor) -> torch.Tensor:
        return self.genes(nodes)  # (R, d)

    # ---- head ----
    def pair_part(self, c: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """W_c c + W_p p + b: (P, d), (P, d) -> (P, H)."""
        d = c.shape[1]
        return F.linear(c, self.first.weight[:, :d]) + F.linear(p, self.first.weight[:, d:2 * d], self.first.bias)

    def readout_part(self, r: torch.Tensor) -> torch.Tensor:
        """W_r r: (R, d) -> (R, H)."""
        return F.linear(r, self.first.weight[:, 2 * r.shape[1]:])

    def head(self, h1: torch.Tensor) -> torch.Tensor:
        """First-layer pre-activations (..., H) -> predictions (...)."""
        return self.rest(h1).squeeze(-1)

    def forward_embeddings(self, c: torch.Tensor, p: torch.Tensor, r: torch.Tensor,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
        """c, p (P, d) per pair; r (R, d) per readout -> (P, R), or (T,) = the entries where mask (P, R) is True."""
        h1 = self.pair_part(c, p).unsqueeze(1) + self.readout_part(r).unsqueeze(0)  # (P, R, H)
        if mask is not None:
            h1 = h1[mask]  # (T, H): only observed triples go through the rest of the MLP
        return self.head(h1)

    def forward(self, t: SymbolTables, ctx: torch.Tensor, pert: torch.Tensor, readouts: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """ctx, pert (P,) table rows; readouts (R,) gene nodes -> (P, R), or (T,) with mask (P, R)."""
        return self.forward_embeddings(self.embed_contexts(t, ctx), self.embed_perturbations(t, pert),
                                       self.embed_readouts(readouts), mask)

    def forward_naive(self, t: SymbolTables, ctx: torch.Tensor, pert: torch.Tensor,
                      readouts: torch.Tensor) -> torch.Tensor:
        """Plain LPM: per-triple (T,) indices -> embed each, concatenate (T, 3d), MLP -> (T,)."""
        x = torch.cat([self.embed_contexts(t, ctx), self.embed_perturbations(t, pert), self.embed_readouts(readouts)], 1)
        return self.head(self.first(x))
