"""The additive answers a residual LPM starts from; the network learns only the deviation from them.

`CrossContextBase` is the `other_contexts` baseline. `GraphBase` (issue 17, H1) speaks for a
knock-down measured in no other training context: the mean profile of its gene-graph neighbours'
knock-downs in the same context, shrunk towards the context mean. `residual_base` is the one rule
that chooses between them. All statistics are buffers (vocabulary aligned), so checkpoints carry them.
Rows are vocabulary indices (0 = unknown); genes are readout rows, *nodes* are gene-encoder nodes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class BaseParts(NamedTuple):
    """Per row (n,), float64: the cross-context base, the base of a perturbation seen nowhere
    (the context-readout mean, `unseen`), and whether p was measured at r in another training context."""

    cross: torch.Tensor
    unseen: torch.Tensor
    seen: torch.Tensor  # bool


class CrossContextBase(nn.Module):
    """The additive answer a residual LPM starts from (= the `other_contexts` baseline):

        base(c, p, r) = offset(c, r) + mean of p at r over the training contexts
        offset(c, r)  = mean of r in c  -  across(r) = the mean over contexts of that

    A perturbation never measured at r falls back to across(r) (so base = the context mean), an
    unknown readout to the global mean; an unseen context has no offset. `leave_own_out` gives the
    base of *training* rows with their own (c, p, r) triple removed from every statistic, as it is
    for a held-out experiment: a training target never enters its own input (otherwise a perturbation
    measured in one context would see its answer).

    `weighted` (LPMConfig.similar_contexts_base, issue 17 many contexts): p's term is the
    `similar_contexts` baseline's instead, sum over c' != c of W[c, c'] * R(c', p, r) (residuals from
    each context's mean, a context missing p at r filled by the others: baselines.context_profiles),
    with W and R set by `set_context_weights`; it never reads the row's own context. `neighbours`
    (LPMConfig.similar_perturbations_base, with weighted): plus the `similar_perturbations` baseline's
    term N(c, p, r), precomputed for every vocabulary cell (it never uses p's own values in c).
    """

    def __init__(self, n_contexts: int, n_perturbations: int, n_genes: int, shrinkable: bool = False,
                 weighted: bool = False, neighbours: bool = False):
        super().__init__()
        f64 = dict(dtype=torch.float64)
        # weighted: (C+1, C+1) context weights (row 0 = an unseen context) and (C+1, P+1, G+1) residuals,
        # NaN = not measured; buffers only then, so older checkpoints still load
        self.ctx_w = torch.nn.Buffer(torch.zeros(n_contexts + 1, n_contexts + 1, **f64)) if weighted else None
        self.resid = (torch.nn.Buffer(torch.full((n_contexts + 1, n_perturbations + 1, n_genes + 1), torch.nan, **f64))
                      if weighted else None)
        self.nb_term = (torch.nn.Buffer(torch.zeros(n_contexts + 1, n_perturbations + 1, n_genes + 1, **f64))
                        if weighted and neighbours else None)  # (C+1, P+1, G+1) N, 0 = none
        # shrinkable (LPMConfig.shrink_cross_base): the perturbation's own term enters times `shrink`,
        # fitted by least squares on training rows (`fit_shrink`); 1 = the other_contexts baseline.
        self.shrink = torch.nn.Buffer(torch.ones((), **f64)) if shrinkable else None
        self.register_buffer("ctx_sum", torch.zeros(n_contexts + 1, n_genes + 1, **f64))  # (C+1, G+1)
        self.register_buffer("ctx_n", torch.zeros(n_contexts + 1, n_genes + 1, **f64))
        self.register_buffer("pert_sum", torch.zeros(n_perturbations + 1, n_genes + 1, **f64))  # (P+1, G+1)
        self.register_buffer("pert_n", torch.zeros(n_perturbations + 1, n_genes + 1, **f64))
        self.register_buffer("total", torch.zeros(2, **f64))  # [sum, count] of every value

    @torch.no_grad()
    def fit(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor, value: torch.Tensor) -> CrossContextBase:
        """ctx, pert, gene (n,) vocabulary rows, value (n,): the training rows."""
        v = value.to(self.ctx_sum)
        for s in (self.ctx_sum, self.ctx_n, self.pert_sum, self.pert_n):
            s.zero_()
        self.ctx_sum.index_put_((ctx, gene), v, accumulate=True)
        self.ctx_n.index_put_((ctx, gene), torch.ones_like(v), accumulate=True)
        self.pert_sum.index_put_((pert, gene), v, accumulate=True)
        self.pert_n.index_put_((pert, gene), torch.ones_like(v), accumulate=True)
        self.total.copy_(torch.stack([v.sum(), v.new_tensor(float(len(v)))]))
        return self

    def _across(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(C+1, G+1) context-readout means (0 where unmeasured), (G+1,) their sum and count over contexts."""
        has = self.ctx_n > 0
        crm = torch.where(has, self.ctx_sum / self.ctx_n.clamp(min=1), 0.0)
        return crm, crm.sum(0), has.sum(0).to(crm)

    @torch.no_grad()
    def parts(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor) -> BaseParts:
        """ctx, pert, gene (n,) vocabulary rows of rows outside training."""
        crm, a_sum, a_n = self._across()
        glob = self.total[0] / self.total[1].clamp(min=1)
        across = torch.where(a_n > 0, a_sum / a_n.clamp(min=1), glob)  # (G+1,)
        offset = torch.where(self.ctx_n[ctx, gene] > 0, crm[ctx, gene] - across[gene], 0.0)  # (n,)
        pn = self.pert_n[pert, gene]
        own = torch.where(pn > 0, self.pert_sum[pert, gene] / pn.clamp(min=1) - across[gene], 0.0)
        return self._parts(offset + across[gene], own, pn > 0, (ctx, pert, gene))

    def _parts(self, unseen: torch.Tensor, own: torch.Tensor, seen: torch.Tensor, rows) -> BaseParts:
        """unseen (n,) = offset + across, own (n,) = p's mean elsewhere - across (0 where unseen); rows =
        (ctx, pert, gene) (n,) each, for the weighted term that replaces own."""
        if self.ctx_w is not None:
            own, seen = self.weighted_term(*rows)
            if self.nb_term is not None:
                own = own + self.nb_term[rows]
        return BaseParts(unseen + (own if self.shrink is None else self.shrink * own), unseen, seen)

    @torch.no_grad()
    def set_context_weights(self, weights: torch.Tensor, resid: torch.Tensor,
                            neighbour_term: torch.Tensor | None = None) -> None:
        """weights (C+1, C+1), resid and neighbour_term (C+1, P+1, G+1) in vocabulary rows (see `weighted`)."""
        self.ctx_w.copy_(weights)
        self.resid.copy_(resid)
        if self.nb_term is not None:
            if neighbour_term is None:
                raise ValueError("CrossContextBase(neighbours=True) needs the neighbour term")
            self.nb_term.copy_(neighbour_term)

    @torch.no_grad()
    def weighted_term(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor,
                      chunk: int = 100_000) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) the weighted sum of p's residuals in the other contexts, and whether any other has p at r."""
        from models.evaluation.baselines import context_profiles

        R, out, seen = self.resid.cpu().numpy(), [], []
        for i in range(0, len(ctx), chunk):  # (C+1, chunk) features at a time
            c, p, g = (x[i:i + chunk].cpu().numpy() for x in (ctx, pert, gene))
            X, has = context_profiles(R, c, p, g)
            w = self.ctx_w[ctx[i:i + chunk]].cpu().numpy()  # (chunk, C+1)
            out.append(torch.from_numpy(np.where(has, np.einsum("nc,cn->n", w, np.nan_to_num(X)), 0.0)))
            seen.append(torch.from_numpy(has))
        dev = self.ctx_w.device
        if not out:
            return torch.zeros(0, dtype=torch.float64, device=dev), torch.zeros(0, dtype=torch.bool, device=dev)
        return torch.cat(out).to(dev), torch.cat(seen).to(dev)

    @torch.no_grad()
    def fit_shrink(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor, value: torch.Tensor) -> float:
        """Least squares of (value - unseen) on p's own term, leave-own-out, over the training rows
        where p was measured elsewhere; clipped to [0, 1]. A no-op unless shrinkable."""
        if self.shrink is None:
            return 1.0
        self.shrink.fill_(1.0)
        parts = self.leave_own_out_parts(ctx, pert, gene, value)
        x = (parts.cross - parts.unseen)[parts.seen]
        y = (value.to(x) - parts.unseen)[parts.seen]
        self.shrink.fill_(min(max(float((x * y).sum() / (x * x).sum().clamp(min=1e-12)) if len(x) else 1.0, 0.0), 1.0))
        return float(self.shrink)

    def forward(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor) -> torch.Tensor:
        """(n,) float64 base for rows outside training."""
        return self.parts(ctx, pert, gene).cross

    @torch.no_grad()
    def leave_own_out_parts(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor,
                            value: torch.Tensor) -> BaseParts:
        """The parts of each training row (the rows given to `fit`) computed without its own triple."""
        v = value.to(self.ctx_sum)
        # Sum and count of each row's (c, p, r) triple: duplicates of a triple leave together.
        key = (ctx * self.pert_n.shape[0] + pert) * self.ctx_n.shape[1] + gene
        _, inv = torch.unique(key, return_inverse=True)
        t_sum = torch.zeros(int(inv.max()) + 1 if len(inv) else 0, dtype=v.dtype, device=v.device)
        t_sum = t_sum.index_add_(0, inv, v)[inv]  # (n,)
        t_n = torch.bincount(inv).to(v)[inv]
        crm, a_sum, a_n = self._across()
        nc = self.ctx_n[ctx, gene] - t_n  # context-readout count without the triple
        crm_own = torch.where(nc > 0, (self.ctx_sum[ctx, gene] - t_sum) / nc.clamp(min=1), 0.0)
        a_sum = a_sum[gene] - crm[ctx, gene] + crm_own  # across-context sum / count without the triple
        a_n = a_n[gene] - (nc <= 0).to(v)
        glob = (self.total[0] - t_sum) / (self.total[1] - t_n).clamp(min=1)
        across = torch.where(a_n > 0, a_sum / a_n.clamp(min=1), glob)
        offset = torch.where(nc > 0, crm_own - across, 0.0)
        pn = self.pert_n[pert, gene] - t_n  # measurements of p at r in the other contexts
        own = torch.where(pn > 0, (self.pert_sum[pert, gene] - t_sum) / pn.clamp(min=1) - across, 0.0)
        return self._parts(offset + across, own, pn > 0, (ctx, pert, gene))

    def leave_own_out(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor,
                      value: torch.Tensor) -> torch.Tensor:
        return self.leave_own_out_parts(ctx, pert, gene, value).cross


class GraphBase(nn.Module):
    """Neighbour averaging over the prior gene graph for knock-downs (issue 17, H1):

        graph(c, p, r) = unseen(c, r) + shrink * mean over K(p, c) of (value(c, k, r) - unseen(c, r))

    K(p, c) = the training knock-downs k != p (perturbations with target genes) measured in context c
    that target a gene of p or a graph neighbour of one (a readout missing from k's signature counts 0). p itself never enters: that is what lets training
    rows see the base a held-out gene gets. `shrink` is fitted on training rows by least squares
    (or fixed by LPMConfig.graph_base_shrink).

    `knn` (LPMConfig.graph_base_knn, issue 17 H4): network_knn's estimator instead, added to the base of
    every knock-down (`knn_term`): K(p, c) = knock-downs targeting a graph neighbour of p's genes that is
    not one of them, each weighted by its strongest such edge (`weighted_neighbours`), the mean scaled by
    n / (n + count_prior), and (shrink, count_prior) chosen on validation rows by network_knn's rule (`choose`).
    """

    def __init__(self, n_contexts: int, n_genes: int, kd_nodes: torch.Tensor, kd_of_pert: torch.Tensor,
                 knn: bool = False):
        super().__init__()
        self.knn = knn
        # knn: the neighbour-count prior k; a buffer only then, so older checkpoints still load
        self.count_prior = torch.nn.Buffer(torch.zeros((), dtype=torch.float64)) if knn else None
        K = kd_nodes.shape[0] - 1
        f64 = dict(dtype=torch.float64)
        self.register_buffer("kd_nodes", kd_nodes.long())  # (K+1, T) target nodes of each knock-down, -1 pad
        self.register_buffer("kd_of_pert", kd_of_pert.long())  # (P+1,) perturbation row -> knock-down row (0 = none)
        self.register_buffer("kd_sum", torch.zeros(n_contexts + 1, K + 1, n_genes + 1, **f64))  # (C+1, K+1, G+1)
        self.register_buffer("kd_n", torch.zeros(n_contexts + 1, K + 1, n_genes + 1, **f64))
        self.register_buffer("shrink", torch.zeros((), **f64))

    @torch.no_grad()
    def fit(self, ctx: torch.Tensor, pert: torch.Tensor, gene: torch.Tensor, value: torch.Tensor) -> GraphBase:
        k = self.kd_of_pert[pert]
        keep = k > 0
        v = value.to(self.kd_sum)[keep]
        self.kd_sum.zero_().index_put_((ctx[keep], k[keep], gene[keep]), v, accumulate=True)
        self.kd_n.zero_().index_put_((ctx[keep], k[keep], gene[keep]), torch.ones_like(v), accumulate=True)
        return self

    @torch.no_grad()
    def neighbours(self, nodes: torch.Tensor, own: torch.Tensor, edge_index: torch.Tensor, n_nodes: int,
                   chunk: int = 512) -> torch.Tensor:
        """nodes (U, T) target nodes of U perturbations (-1 pad), own (U,) their knock-down rows (0 = none,
        excluded), edge_index (2, E) of the gene graph -> (U, K+1) float 0/1: which knock-downs are neighbours."""
        K1, dev = self.kd_nodes.shape[0], nodes.device
        adj = torch.sparse_coo_tensor(edge_index, torch.ones(edge_index.shape[1], device=dev), (n_nodes, n_nodes),
                                      check_invariants=True)
        kd = self.kd_nodes.clamp(min=0)
        inc = torch.zeros(n_nodes + 1, K1, device=dev)  # (N+1, K+1) node -> knock-downs targeting it; row N = pad
        inc[torch.where(self.kd_nodes >= 0, kd, n_nodes), torch.arange(K1, device=dev).unsqueeze(1).expand_as(kd)] = 1
        out = []
        for i in range(0, nodes.shape[0], chunk):
            nd = nodes[i:i + chunk]
            ind = torch.zeros(nd.shape[0], n_nodes + 1, device=dev)  # (u, N+1) the perturbation's own genes
            ind.scatter_(1, torch.where(nd >= 0, nd, n_nodes), 1.0)
            ind = ind[:, :n_nodes]
            reach = ind + torch.sparse.mm(adj, ind.T).T  # (u, N): own genes and their graph neighbours
            out.append(((reach > 0).float() @ inc[:n_nodes] > 0).float())  # (u, K+1)
        m = torch.cat(out) if out else torch.zeros(0, K1, device=dev)
        m[:, 0] = 0
        m[torch.arange(len(own), device=dev), own] = 0  # never the perturbation itself
        return m

    @torch.no_grad()
    def weighted_neighbours(self, nodes: torch.Tensor, own: torch.Tensor, edge_index: torch.Tensor,
                            edge_weight: torch.Tensor, n_nodes: int, chunk: int = 512) -> torch.Tensor:
        """network_knn's neighbours (`knn`): nodes (U, T) target nodes (-1 pad), own (U,) knock-down rows
        (excluded), edge_index (2, E), edge_weight (E,) -> (U, K+1) float64: for each knock-down the
        strongest edge from one of the perturbation's genes to one of its targets that is not one of
        those genes (0 = not a neighbour)."""
        K1, dev = self.kd_nodes.shape[0], nodes.device
        key, inv = torch.unique(edge_index[0] * n_nodes + edge_index[1], return_inverse=True)
        w = torch.zeros(len(key), dtype=torch.float64, device=dev).scatter_reduce(
            0, inv, edge_weight.to(torch.float64), "amax", include_self=False)  # duplicate edges: the strongest
        adj = torch.sparse_coo_tensor(torch.stack([key // n_nodes, key % n_nodes]), w, (n_nodes, n_nodes),
                                      check_invariants=True)
        kd = torch.where(self.kd_nodes >= 0, self.kd_nodes, n_nodes)  # (K+1, T'); column N = pad, weight 0
        out = []
        for i in range(0, nodes.shape[0], chunk):
            nd = nodes[i:i + chunk]
            u = torch.arange(nd.shape[0], device=dev)
            W = torch.zeros(nd.shape[0], n_nodes + 1, dtype=torch.float64, device=dev)  # (u, N+1) node weights
            for t in range(nd.shape[1]):  # the strongest edge from any own gene (adj symmetric)
                ok = nd[:, t] >= 0
                one = torch.zeros(n_nodes, nd.shape[0], dtype=torch.float64, device=dev)
                one[nd[ok, t], u[ok]] = 1.0
                W[:, :n_nodes] = torch.maximum(W[:, :n_nodes], torch.sparse.mm(adj, one).T)
            W.scatter_(1, torch.where(nd >= 0, nd, n_nodes), 0.0)  # a gene of p itself is no neighbour
            W[:, n_nodes] = 0.0
            out.append(W[:, kd].amax(-1) if kd.shape[1] else W.new_zeros(nd.shape[0], K1))  # (u, K+1)
        m = torch.cat(out) if out else torch.zeros(0, K1, dtype=torch.float64, device=dev)
        m[:, 0] = 0
        m[torch.arange(len(own), device=dev), own] = 0  # never the perturbation itself
        return m

    @torch.no_grad()
    def neighbour_residual(self, ctx: torch.Tensor, gene: torch.Tensor, row: torch.Tensor, nb: torch.Tensor,
                           unseen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row (n,): its context, readout, row into nb (U, K+1) neighbour weights (0/1, or network_knn's)
        and context-readout mean `unseen` -> the weighted mean over the neighbours' signatures in that
        context of value - unseen, and how many neighbour signatures there are in that context.
        A readout missing from a neighbour's signature counts as 0 (= the context mean): in ranked
        top-k lists, averaging only where measured would keep only the neighbours where it went up."""
        s, n, sig, cnt = (torch.zeros(len(ctx), dtype=torch.float64, device=ctx.device) for _ in range(4))
        nb = nb.to(self.kd_sum)
        for c in torch.unique(ctx).tolist():  # (U, K+1) @ (K+1, G+1) per context
            at = ctx == c
            s[at] = (nb @ self.kd_sum[c])[row[at], gene[at]]
            n[at] = (nb @ self.kd_n[c])[row[at], gene[at]]
            has_c = (self.kd_n[c].sum(1) > 0).to(nb)  # (K+1,) knock-downs with a signature in context c
            sig[at] = (nb @ has_c)[row[at]]  # their total weight
            cnt[at] = ((nb > 0).to(nb) @ has_c)[row[at]]
        return torch.where(sig > 0, (s - n * unseen) / torch.where(sig > 0, sig, 1.0), 0.0), cnt

    @torch.no_grad()
    def fit_shrink(self, value: torch.Tensor, unseen: torch.Tensor, nb_resid: torch.Tensor, has: torch.Tensor,
                   fixed: float | None = None) -> float:
        """Least-squares shrink of (value - unseen) on the neighbour residual over training rows with
        neighbours, clipped to [0, 1]; `fixed` overrides."""
        if fixed is None:
            x, y = nb_resid[has], (value.to(unseen) - unseen)[has]
            fixed = float((x * y).sum() / (x * x).sum().clamp(min=1e-12)) if len(x) else 0.0
        self.shrink.fill_(min(max(fixed, 0.0), 1.0))
        return float(self.shrink)

    def knn_term(self, nb_resid: torch.Tensor, count: torch.Tensor, count_prior: float | None = None,
                 shrink: float | None = None) -> torch.Tensor:
        """`knn`: shrink x n / (n + k) x the neighbours' mean residual, per row (n,); 0 without neighbours.
        count_prior, shrink: the stored ones unless given."""
        k = float(self.count_prior) if count_prior is None else count_prior
        s = float(self.shrink) if shrink is None else shrink
        return torch.where(count > 0, s * nb_resid * count / (count + k).clamp(min=1e-12), 0.0)

    @torch.no_grad()
    def choose(self, valid, base: torch.Tensor, nb_resid: torch.Tensor, count: torch.Tensor) -> tuple[float, float]:
        """`knn`: (shrink, count prior) by network_knn's rule on the validation rows `valid` (a DataFrame;
        base, nb_resid, count (n,) per its row), its default without validation rows; stored."""
        from models.evaluation.baselines import NetworkKNN, choose_shrinkage

        s, k = NetworkKNN.DEFAULT_SHRINKAGE, 0.0
        if valid is not None and len(valid):
            s, k, _ = choose_shrinkage(valid, base.cpu().numpy(), lambda k: self.knn_term(nb_resid, count, k, 1.0).cpu().numpy(),
                                       NetworkKNN.GRID, NetworkKNN.COUNT_GRID)
        self.shrink.fill_(s)
        self.count_prior.fill_(k)
        return s, k

    def unseen_base(self, parts: BaseParts, nb_resid: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        """The base of a knock-down seen in no training context (a held-out gene): graph, else context mean."""
        return torch.where(has, parts.unseen + self.shrink * nb_resid, parts.unseen)


def residual_base(parts: BaseParts, graph_unseen: torch.Tensor | None = None,
                  graph_term: torch.Tensor | None = None) -> torch.Tensor:
    """The one rule: p's own cross-context mean where it was measured elsewhere; otherwise the graph
    base when there is one, else the context mean. With `graph_term` (GraphBase.knn_term) the
    neighbours' term is added to every row instead."""
    if graph_term is not None:
        return parts.cross + graph_term
    if graph_unseen is None:
        return parts.cross
    return torch.where(parts.seen, parts.cross, graph_unseen)
