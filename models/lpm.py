"""User API of the LPM: pandas in, numpy / DataFrames out.

Turns long tables and a `SideInformation` (SMILES, prior gene graph, cell-line features, targets, doses) into
vocabularies and symbol tables, and calls `models.train` / `models.module`. Unseen names are
handled here: they get table rows whose learned-vector index is 0, so only the encoders speak.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from graph.io.identifiers import combination_members as split_combination  # the one combination rule
from graph.io.validation import require_one_row_per_key
from models import checkpoint as ckpt
from models.features import (
    Standardizer,
    Vocab,
    compound_feature_dim,
    compound_features,
    dose_features,
    table_snapshot_id,
)
from models.module import LPMConfig, LPMModule, SymbolTables
from models.residual_base import residual_base
from models.side_information import SideInformation
from models.train import PairData, dense_pairs, needs_base, resolve_device, train


def _codes(s: pd.Series, names: list[str]) -> np.ndarray:
    """(n,) position of each value of s in names, -1 when absent (via category codes: fast on 10M rows)."""
    cat = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype(str).astype("category")
    pos = pd.Index(names).get_indexer(cat.cat.categories.astype(str))
    codes = cat.cat.codes.to_numpy()
    return np.where(codes >= 0, pos[codes], -1).astype(np.int64)


def _names(s: pd.Series) -> list[str]:
    """Sorted distinct values of s as strings."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return sorted(str(c) for c in s.cat.remove_unused_categories().cat.categories)
    return sorted(s.astype(str).unique())


# LPMConfig.base_choice = "validation": the residual bases an LPM chooses among, simplest first (ties go to
# the earlier), as LPMConfig overrides; each applies only when its data is there (LPM._base_candidates).
_FLAGS = ("similar_contexts_base", "similar_perturbations_base", "graph_base", "graph_base_knn")
BASE_CANDIDATES = {name: dict(zip(_FLAGS, on, strict=True)) for name, on in (
    ("cross_context", (False, False, False, False)),
    ("similar_contexts", (True, False, False, False)),
    ("similar_perturbations", (True, True, False, False)),
    ("graph_knn", (False, False, True, True)),
    ("similar_contexts+graph_knn", (True, False, True, True)),
    ("similar_perturbations+graph_knn", (True, True, True, True)),
)}
BASE_CHOICES = ("fixed", "validation", "trained")


def _validation_r(valid: pd.DataFrame, pred: np.ndarray) -> float:
    """Mean per-signature r of predictions of the validation rows (-inf when undefined): what a base is chosen by."""
    from models.evaluation.metrics import evaluate_predictions

    r = evaluate_predictions(valid, np.nan_to_num(np.asarray(pred, dtype=np.float64)))["pearson_per_signature"]
    return float(r) if np.isfinite(r) else float("-inf")


def _base_record(chosen: str, by: str, scores: dict[str, float], skipped: dict[str, str], valid) -> dict:
    """LPM.base_selection: the chosen base, what it was chosen by, every candidate's validation r, why others did not apply."""
    return {"chosen": chosen, "metric": "pearson_per_signature", "by": by,
            "validation": {n: round(v, 6) for n, v in scores.items()}, "skipped": skipped,
            "n_valid_rows": 0 if valid is None else len(valid)}


class LPM:
    def __init__(self, config: LPMConfig | None = None, *, side: SideInformation | None = None, seed: int = 0):
        self.config = config or LPMConfig()
        # fit starts from requested_config; with base_choice = "validation", config becomes the chosen base's
        # (_chosen). A config assigned after a fit is honoured as the new request.
        self.requested_config, self._chosen = self.config, None
        self.base_selection: dict = {}  # base_choice = "validation": chosen base, every candidate's validation r
        self.side = side or SideInformation()
        self.seed = seed
        self.module: LPMModule | None = None
        self.history: list[dict] = []
        self.valid_unscored = {"rows": 0, "readouts": 0, "examples": []}  # set by fit (_scored_validation)
        self.snapshot_id = ""
        self._cfeat: dict[str, np.ndarray] = {}  # SMILES -> raw compound features

    # ---------------------------------------------------------------- vocabularies and tables
    def _compound_of(self, member: str) -> str | None:
        key = self.side.perturbation_compounds.get(member, member)
        return key if key in self.side.compound_smiles else None

    def _raw_compound(self, members: list[str]) -> np.ndarray:
        """(n, Fp) raw features, zero rows for members without a structure."""
        cfg = self.config
        smiles = [self.side.compound_smiles.get(self._compound_of(m) or "", None) for m in members]
        todo = sorted({s for s in smiles if s and s not in self._cfeat})
        if todo:
            self._cfeat.update(zip(todo, compound_features(todo, cfg.fp_bits, cfg.fp_radius), strict=True))
        zero = np.zeros(compound_feature_dim(cfg.fp_bits), np.float32)
        return np.stack([self._cfeat[s] if s else zero for s in smiles]) if members else zero[None, :].repeat(0, 0)

    def _build_vocab(self, df: pd.DataFrame) -> None:
        cfg = self.config
        perts = _names(df["perturbation"])
        members = sorted({m for p in perts for m in split_combination(p)})
        genes = _names(df["readout"])
        if cfg.use_targets:
            genes += sorted({g for m in members for g in self.side.perturbation_targets.get(m, [])} - set(genes))
        nodes = list(genes)
        graph = self.side.gene_graph
        if cfg.use_gene_graph and graph is not None:
            nodes += sorted({str(g) for g in pd.concat([graph["source"], graph["target"]])} - set(nodes))
        self.vocab = {"context": _names(df["context"]), "perturbation": perts,
                      "member": members, "gene": genes, "gene_node": nodes,
                      "compound": sorted({c for m in members if (c := self._compound_of(m))})}
        # Standardisation statistics from training symbols only.
        self._ctx_cols: list[str] = []
        self._ctx_std = Standardizer(np.zeros(0, np.float32), np.ones(0, np.float32))
        cf = self.side.context_features
        if cfg.use_context_features and cf is not None:
            self._ctx_cols = [str(c) for c in cf.columns]
            known = cf.reindex([c for c in self.vocab["context"] if c in cf.index])
            self._ctx_std = Standardizer.fit(known.to_numpy())
        self._comp_std = Standardizer(np.zeros(0, np.float32), np.ones(0, np.float32))
        if cfg.use_compound_encoder:
            raw = self._raw_compound([m for m in members if self._compound_of(m)])
            self._comp_std = Standardizer.fit(raw[:, :-1][raw[:, -1] > 0] if len(raw) else raw[:, :-1])

    @property
    def feature_dims(self) -> dict[str, int]:
        fc = len(self._ctx_cols) + 1 if self._ctx_cols else 0  # + has_features flag
        fp = compound_feature_dim(self.config.fp_bits) if self.config.use_compound_encoder else 0
        return {"context": fc, "compound": fp}

    def _tables(self, contexts: list[str], perts: list[str]) -> SymbolTables:
        """Tables for the given names (row i+1 = names[i], row 0 = unknown); unseen names get sym 0."""
        dims, v = self.feature_dims, self.vocab
        ctx_feat = np.zeros((len(contexts) + 1, dims["context"]), np.float32)
        if dims["context"]:
            raw = self.side.context_features.reindex(contexts).to_numpy(dtype=np.float32)  # NaN rows when absent
            ctx_feat[1:, :-1] = self._ctx_std.transform(raw)
            ctx_feat[1:, -1] = np.isin(contexts, self.side.context_features.index.astype(str))
        members = sorted({m for p in perts for m in split_combination(p)})
        mrow = {m: i + 1 for i, m in enumerate(members)}
        comp = np.zeros((len(members) + 1, dims["compound"]), np.float32)
        if dims["compound"] and members:
            raw = self._raw_compound(members)
            comp[1:, :-1] = self._comp_std.transform(raw[:, :-1]) * raw[:, -1:]  # no structure -> zero row
            comp[1:, -1] = raw[:, -1]
        dose = np.zeros((len(members) + 1, 2), np.float32)
        dose[1:] = dose_features([self.side.perturbation_doses.get(m) for m in members])
        tl = [self.side.perturbation_targets.get(m, []) if self.config.use_targets else [] for m in members]
        T = max((len(t) for t in tl), default=0)
        targets = np.full((len(members) + 1, T), -1, np.int64)
        node_index = Vocab(v["gene_node"])
        for i, t in enumerate(tl):
            targets[i + 1, : len(t)] = node_index.index(t) - 1  # -1: gene unknown to the model
        M = max((len(split_combination(p)) for p in perts), default=1)
        pm = np.zeros((len(perts) + 1, M), np.int64)
        for i, p in enumerate(perts):
            ms = split_combination(p)
            pm[i + 1, : len(ms)] = [mrow[m] for m in ms]
        t = torch.from_numpy
        mem_sym = np.concatenate([[0], Vocab(v["member"]).index(members)])
        nb = None
        if self.config.neighbour_embedding and self.module is not None:
            nb = t(self._member_neighbours(targets, mem_sym))
        return SymbolTables(
            ctx_sym=t(np.concatenate([[0], Vocab(v["context"]).index(contexts)])), ctx_feat=t(ctx_feat),
            mem_sym=t(mem_sym), mem_comp=t(comp), mem_dose=t(dose), mem_targets=t(targets), pert_members=t(pm),
            mem_nb=nb)

    def _member_neighbours(self, targets: np.ndarray, mem_sym: np.ndarray) -> np.ndarray:
        """targets (Nm, T) gene nodes of table members, mem_sym (Nm,) their learned-vector rows -> (Nm, Kn)
        learned-vector rows of the training knock-downs targeting one of their genes or a graph neighbour
        (the model's gene graph), never the member itself; 0 pad."""
        adj: dict[int, set[int]] = {}
        for a, b in self.module.genes.edge_index.T.tolist():
            adj.setdefault(a, set()).add(b)
        by_node: dict[int, set[int]] = {}  # gene node -> learned rows of training members targeting it
        node_index = Vocab(self.vocab["gene_node"])
        for j, m in enumerate(self.vocab["member"]):
            for n in node_index.index(self.side.perturbation_targets.get(m, [])) - 1:
                by_node.setdefault(int(n), set()).add(j + 1)
        rows = []
        for nodes, own in zip(targets.tolist(), mem_sym.tolist(), strict=True):
            reach = {n for n in nodes if n >= 0}
            reach |= {b for n in reach for b in adj.get(n, ())}
            rows.append(sorted({j for n in reach for j in by_node.get(n, ())} - {own, 0}))
        out = np.zeros((len(rows), max((len(r) for r in rows), default=0)), np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    def _new_module(self, edge_index: torch.Tensor | None = None, edge_weight: torch.Tensor | None = None) -> LPMModule:
        v, dims = self.vocab, self.feature_dims
        node_sym = torch.from_numpy(Vocab(v["gene"]).index(v["gene_node"]))
        if edge_index is None:
            edge_index, edge_weight = torch.zeros((2, 0), dtype=torch.long), torch.zeros(0)
            if self.config.use_gene_graph and self.side.gene_graph is not None and len(self.side.gene_graph):
                g = self.side.gene_graph
                s = Vocab(v["gene_node"]).index(g["source"].astype(str)) - 1
                d = Vocab(v["gene_node"]).index(g["target"].astype(str)) - 1
                w = g["weight"].to_numpy(np.float32) if "weight" in g else np.ones(len(g), np.float32)
                w = np.where(np.isfinite(w), w, 1.0).astype(np.float32)
                keep = (s >= 0) & (d >= 0) & (s != d)
                s, d, w = s[keep], d[keep], w[keep]
                src, dst, w = np.concatenate([s, d]), np.concatenate([d, s]), np.concatenate([w, w])
                # One edge order whatever the graph's row order or edge orientation (by target, source,
                # weight): message passing sums a node's neighbours in edge order, and training amplifies
                # a last-bit difference into another model (docs/results.md, Protocol: reproducibility).
                order = np.lexsort((w, src, dst))
                edge_index = torch.from_numpy(np.stack([src[order], dst[order]]))
                edge_weight = torch.from_numpy(w[order])
        kd = self._knockdowns() if self.config.residual and self.config.graph_base else {}
        return LPMModule(self.config, n_contexts=len(v["context"]), n_members=len(v["member"]),
                         n_genes=len(v["gene"]), ctx_feat_dim=dims["context"], comp_feat_dim=dims["compound"],
                         gene_node_sym=node_sym, edge_index=edge_index, edge_weight=edge_weight,
                         n_perturbations=len(v["perturbation"]), **kd)

    def _knockdowns(self) -> dict[str, torch.Tensor]:
        """The training perturbations with target genes (knock-downs), for GraphBase: kd_nodes (K+1, T)
        their target nodes (-1 pad; row 0 = none), kd_of_pert (P+1,) perturbation row -> knock-down row."""
        perts = self.vocab["perturbation"]
        nodes = self._tables([], perts).target_nodes(torch.arange(1, len(perts) + 1))  # (P, T)
        has = (nodes >= 0).any(1)
        kd_of_pert = torch.zeros(len(perts) + 1, dtype=torch.long)
        kd_of_pert[1:][has] = torch.arange(1, int(has.sum()) + 1)
        return {"kd_nodes": torch.cat([nodes.new_full((1, nodes.shape[1]), -1), nodes[has]]), "kd_of_pert": kd_of_pert}

    def _base_rows(self, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Vocabulary rows (0 = unknown) of each row's context, perturbation and readout, for CrossContextBase."""
        v = self.vocab
        return tuple(torch.from_numpy(_codes(df[col], v[k]) + 1) for col, k in
                     (("context", "context"), ("perturbation", "perturbation"), ("readout", "gene")))

    @torch.no_grad()
    def _bases(self, df: pd.DataFrame, tables: SymbolTables, perts: list[str],
               own_value: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) float64 residual base of each row and the base it would have as an unseen knock-down.
        perts: the names of `tables`' perturbation rows. With own_value (the training rows' values),
        each row's own (context, perturbation, readout) is left out of every statistic."""
        parts, nb_resid, count = self._base_parts(df, tables, perts, own_value)
        g = self.module.graph_base
        if g is None:
            return parts.cross, parts.unseen
        if g.knn:  # H4: the neighbour term on every knock-down; (shrink, k) chosen in _residual_data
            term = g.knn_term(nb_resid, count)
            return residual_base(parts, graph_term=term), parts.unseen + term
        dev, has = count.device, count > 0
        if own_value is not None:  # fitting: the shrink comes from the training rows
            g.fit_shrink(own_value.to(dev), parts.unseen, nb_resid, has, self.config.graph_base_shrink)
        unseen = g.unseen_base(parts, nb_resid, has)
        return residual_base(parts, unseen), unseen

    @torch.no_grad()
    def _base_parts(self, df: pd.DataFrame, tables: SymbolTables, perts: list[str], own_value: torch.Tensor | None = None):
        """The cross-context parts of each row and, with a graph base, its neighbours' mean residual and
        neighbour count (n,) (None without one); arguments as `_bases`."""
        m = self.module
        dev = m.base.ctx_sum.device
        rows = tuple(r.to(dev) for r in self._base_rows(df))
        parts = m.base.parts(*rows) if own_value is None else m.base.leave_own_out_parts(*rows, own_value.to(dev))
        if m.graph_base is None:
            return parts, None, None
        table_row = _codes(df["perturbation"], perts) + 1
        uniq, inv = np.unique(table_row, return_inverse=True)
        vocab_row = np.concatenate([[0], _codes(pd.Series(perts), self.vocab["perturbation"]) + 1])[uniq]
        g = m.graph_base
        nodes = tables.target_nodes(torch.from_numpy(uniq).to(tables.pert_members.device)).to(dev)  # (U, T)
        own = g.kd_of_pert[torch.from_numpy(vocab_row).to(dev)]  # (U,) excluded: never the row's own perturbation
        if g.knn:
            nb = g.weighted_neighbours(nodes, own, m.genes.edge_index, m.genes.edge_weight, m.genes.n_nodes)
        else:
            nb = g.neighbours(nodes, own, m.genes.edge_index, m.genes.n_nodes)  # (U, K+1)
        return parts, *g.neighbour_residual(rows[0], rows[2], torch.from_numpy(inv).to(dev), nb, parts.unseen)

    def _residual_data(self, train: pd.DataFrame, valid: pd.DataFrame | None, ctxs: list[str], perts: list[str],
                       tables: SymbolTables) -> tuple[PairData, PairData | None]:
        """Residual LPM: fit the bases on training rows; the network's targets are value - base, with
        each training row's base computed without its own (context, perturbation, readout). With the
        graph base, a share (graph_base_dropout) of the knock-down experiments also trains as if unseen:
        a copy of its perturbation without learned vectors, against the base a held-out gene gets."""
        m = self.module
        rows, value = self._fit_bases(train, valid, tables, perts)
        base, unseen = self._bases(train, tables, perts, value)
        y = (value - base).float().numpy()
        c, p = _codes(train["context"], ctxs) + 1, _codes(train["perturbation"], perts) + 1
        nodes = _codes(train["readout"], self.vocab["gene_node"])
        q = self.config.graph_base_dropout
        if m.graph_base is not None and q > 0:
            tables, copy_of = tables.with_unseen_copies(torch.arange(1, len(perts) + 1))
            copy_of = np.concatenate([[0], copy_of.numpy()])  # table row -> its unseen copy's row
            pair = c * (len(perts) + 1) + p
            uniq, inv = np.unique(pair, return_inverse=True)
            chosen = np.random.default_rng(self.seed).random(len(uniq)) < q
            sel = chosen[inv] & (m.graph_base.kd_of_pert[rows[1]] > 0).numpy()  # knock-down rows of chosen pairs
            c, p, nodes = np.concatenate([c, c[sel]]), np.concatenate([p, copy_of[p[sel]]]), np.concatenate([nodes, nodes[sel]])
            y = np.concatenate([y, (value - unseen)[torch.from_numpy(sel)].float().numpy()])
            base = torch.cat([base, unseen[torch.from_numpy(sel)]])
        # the whole values (base + target) for signature weights / stopping by r
        tr = dense_pairs(c, p, nodes, y, tables, base.float().numpy() if needs_base(self.config, False) else None)
        va = None
        if valid is not None and len(valid):
            vbase = self._bases(valid, tables, perts)[0].numpy()
            yv = (valid["value"].to_numpy(np.float64) - vbase).astype(np.float32)
            va = self._pair_data(valid, ctxs, perts, tables, yv,
                                 vbase.astype(np.float32) if needs_base(self.config, True) else None)
        return tr, va

    @torch.no_grad()
    def _fit_bases(self, train: pd.DataFrame, valid: pd.DataFrame | None, tables: SymbolTables,
                   perts: list[str]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Fit the module's residual bases on the training rows (ridge, shrinkage and count prior chosen on
        the validation rows where the base has them); returns the training rows' vocabulary rows and values (n,)."""
        m, rows = self.module, self._base_rows(train)
        value = torch.from_numpy(train["value"].to_numpy(np.float64))
        m.base.fit(*rows, value)
        if m.base.ctx_w is not None:
            m.base.set_context_weights(*self._context_weights(train, valid, m.base.nb_term is not None))
        m.base.fit_shrink(*rows, value)
        if m.graph_base is not None:
            m.graph_base.fit(*rows, value)
            if m.graph_base.knn:  # H4: shrink and count prior chosen on the validation rows, as network_knn's
                if valid is not None and len(valid):
                    vparts, v_resid, v_count = self._base_parts(valid, tables, perts)
                    m.graph_base.choose(valid, vparts.cross, v_resid, v_count)
                else:
                    m.graph_base.choose(None, None, None, None)
        return rows, value

    def _base_candidates(self) -> tuple[dict[str, dict], dict[str, str]]:
        """The BASE_CANDIDATES that apply to the training vocabulary, and why each other one does not."""
        cfg, skipped = self.requested_config, {}
        names = ["cross_context"]
        weighted = ("similar_contexts", "similar_perturbations")
        if len(self.vocab["context"]) >= 2:
            names += weighted
        else:
            skipped.update({n: "one training context: no other line to weigh" for n in weighted})
        graph = self.side.gene_graph
        if not (cfg.use_targets and cfg.use_gene_graph and graph is not None and len(graph)):
            why = "no gene graph (or use_targets / use_gene_graph off)"
        elif not bool((self._knockdowns()["kd_of_pert"] > 0).any()):
            why = "no training perturbation with target genes in the model's genes"
        else:
            why = ""
            names.append("graph_knn")
            for n in weighted:
                if n in names:
                    names.append(f"{n}+graph_knn")
                else:
                    skipped[f"{n}+graph_knn"] = skipped[n]
        if why:
            skipped.update({n: why for n in ("graph_knn", *(f"{w}+graph_knn" for w in weighted))})
        return {n: BASE_CANDIDATES[n] for n in names}, skipped

    def _choose_base(self, train: pd.DataFrame, valid: pd.DataFrame | None, ctxs: list[str], perts: list[str]) -> None:
        """LPMConfig.base_choice = "validation": set self.config to the applicable base whose predictions alone
        score the best mean per-signature r on the validation rows (ties: the simpler); record it all in
        self.base_selection. Without validation rows the cross-context base is kept and the record says so."""
        candidates, skipped = self._base_candidates()
        scores: dict[str, float] = {}
        if valid is None or not len(valid):
            skipped.update({n: "no validation rows to choose on" for n in candidates if n != "cross_context"})
            candidates = {"cross_context": candidates["cross_context"]}
        else:
            tables = self._tables(ctxs, perts)
            for name, overrides in candidates.items():
                self.config = replace(self.requested_config, **overrides)
                self.module = self._new_module()
                try:
                    self._fit_bases(train, valid, tables, perts)
                except ValueError as exc:  # similar_contexts_base on a table too large for its dense array
                    skipped[name] = str(exc)
                    continue
                scores[name] = _validation_r(valid, self._bases(valid, tables, perts)[0].numpy())
        order = list(candidates)
        chosen = max(scores, key=lambda n: (scores[n], -order.index(n))) if scores else "cross_context"
        self.config = replace(self.requested_config, **candidates[chosen])
        self.module = None
        self.base_selection = _base_record(chosen, "base alone", scores, skipped, valid)

    def _context_weights(self, train: pd.DataFrame, valid: pd.DataFrame | None,
                         neighbours: bool = False) -> tuple[torch.Tensor, ...]:
        """LPMConfig.similar_contexts_base: the `similar_contexts` baseline fitted on these rows (its ridge chosen
        on the validation rows) -> its context weights (C+1, C+1) and residuals (C+1, P+1, G+1) in vocabulary
        rows; row 0 (an unseen context) weighs every training context equally, as the baseline does. With
        `neighbours` (similar_perturbations_base) the `similar_perturbations` baseline is fitted instead (its
        K and strength chosen on the validation rows) and its neighbour term (C+1, P+1, G+1) comes third."""
        from models.evaluation.baselines import SimilarContexts, SimilarPerturbations

        # One fit per LPM.fit: every candidate base and the final one read the same baseline (similar_perturbations
        # holds similar_contexts' very weights and residuals), so it is fitted again only to add the neighbours.
        sc = getattr(self, "_weighted_baseline", None)
        if sc is None or (neighbours and not isinstance(sc, SimilarPerturbations)):
            sc = self._weighted_baseline = (SimilarPerturbations() if neighbours else SimilarContexts()).fit(train, valid)
        flag = "similar_perturbations_base" if neighbours else "similar_contexts_base"
        if sc.equal_weights_only_ is not None:
            raise ValueError(f"LPMConfig.{flag} needs a dense (context, perturbation, readout) array "
                             f"and this training set has {sc.cells_:,} cells (> {sc.max_cells:,}); turn the option "
                             "off or train on fewer readouts")
        v = self.vocab
        ci, pi, gi = (_codes(pd.Series(list(names)), v[k]) + 1 for names, k in
                      ((sc.contexts_, "context"), (sc.perturbations_, "perturbation"), (sc.readout_index_, "gene")))
        C = len(v["context"])
        W = np.zeros((C + 1, C + 1))
        W[np.ix_(ci, ci)] = sc.W_
        W[0, 1:] = 1.0 / max(C, 1)
        shape = (C + 1, len(v["perturbation"]) + 1, len(v["gene"]) + 1)
        R = np.full(shape, np.nan)
        R[np.ix_(ci, pi, gi)] = sc.R_
        if not neighbours:
            return torch.from_numpy(W), torch.from_numpy(R)
        N = np.zeros(shape)
        N[np.ix_(ci, pi, gi)] = sc.term_grid()
        return torch.from_numpy(W), torch.from_numpy(R), torch.from_numpy(N)

    def _scored_validation(self, valid: pd.DataFrame) -> pd.DataFrame:
        """The validation rows the model can score: those whose readout has a gene node (a training readout, a
        target gene or a gene-graph gene; graph-only genes are embedded through the graph). A readout with none
        has nothing to embed it (predict gives every such readout the same zero readout embedding), so its rows
        are left out of the validation loss and stopping, counted in `valid_unscored`; never mapped to another
        gene nor collapsed into one dense cell (dense_pairs refuses node -1)."""
        known = _codes(valid["readout"], self.vocab["gene_node"]) >= 0
        names = sorted(valid.loc[~known, "readout"].astype(str).unique())
        self.valid_unscored = {"rows": int((~known).sum()), "readouts": len(names), "examples": names[:5]}
        return valid if known.all() else valid.loc[known].reset_index(drop=True)

    def _pair_data(self, df: pd.DataFrame, contexts: list[str], perts: list[str], tables: SymbolTables,
                   values: np.ndarray | None = None, base: np.ndarray | None = None) -> PairData:
        values = df["value"].to_numpy(np.float32) if values is None else values
        return dense_pairs(_codes(df["context"], contexts) + 1, _codes(df["perturbation"], perts) + 1,
                           _codes(df["readout"], self.vocab["gene_node"]), values, tables, base)

    # ---------------------------------------------------------------- training
    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, *, progress: bool = True,
            checkpoint: str | os.PathLike | None = None, resume: bool = False, snapshot_id: str | None = None,
            device: str | None = None, parallel=None) -> LPM:
        """Train on a long table (context, perturbation, readout, value). With `checkpoint`, the
        training state is saved there after every epoch; `resume=True` continues from it.
        `parallel`: this process is one rank of a data-parallel run (models/distributed.py)."""
        if device is None:  # only then is the platform's configuration needed
            from graph.settings import get_settings

            device = get_settings().device
        require_one_row_per_key(train, "LPM.fit training rows")  # replicates are averaged before, never dropped
        if valid is not None:
            require_one_row_per_key(valid, "LPM.fit validation rows")
        if self.config is not self._chosen:  # the config given (or assigned since) is the request
            self.requested_config = self.config
        requested = self.config = self.requested_config
        if requested.base_choice not in BASE_CHOICES:
            raise ValueError(f"LPMConfig.base_choice must be one of {BASE_CHOICES}, not {requested.base_choice!r}")
        if requested.similar_perturbations_base and not requested.similar_contexts_base:
            raise ValueError("LPMConfig.similar_perturbations_base adds to the similar_contexts base: set "
                             "similar_contexts_base=True as well")
        self.module, self.base_selection = None, {}
        self._build_vocab(train)
        if valid is not None:
            valid = self._scored_validation(valid)
        self.snapshot_id = snapshot_id or table_snapshot_id(train)
        # One table for train and valid: training names first, then validation-only (unseen) names.
        ctxs, perts = list(self.vocab["context"]), list(self.vocab["perturbation"])
        if valid is not None:
            ctxs += sorted(set(_names(valid["context"])) - set(ctxs))
            perts += sorted(set(_names(valid["perturbation"])) - set(perts))
        choose = requested.residual and requested.base_choice != "fixed"  # a plain LPM has no base to choose
        if choose and requested.base_choice == "trained" and valid is not None and len(valid):
            if resume or parallel is not None:
                raise ValueError("LPMConfig.base_choice='trained' fits one LPM per base: resume and data-parallel "
                                 "runs are not supported; use base_choice='validation' or 'fixed'")
            return self._fit_each_base(train, valid, progress=progress, checkpoint=checkpoint,
                                       snapshot_id=self.snapshot_id, device=device)
        self._weighted_baseline = None  # _context_weights' fit for these rows (bases only; dropped below)
        if choose:  # "validation", or "trained" without validation rows (the record says so)
            self._choose_base(train, valid, ctxs, perts)
        self._chosen = self.config
        torch.manual_seed(self.seed)  # the same initial network whether or not a base was chosen first
        self.module = self._new_module()
        tables = self._tables(ctxs, perts)
        if self.config.residual:
            tr, va = self._residual_data(train, valid, ctxs, perts, tables)
            self._weighted_baseline = None
        else:
            tr = self._pair_data(train, ctxs, perts, tables)
            va = self._pair_data(valid, ctxs, perts, tables) if valid is not None and len(valid) else None
        state = None
        if resume and checkpoint is not None and Path(checkpoint).exists():
            payload = ckpt.load_checkpoint(checkpoint)
            ckpt.check_same_vocab(payload, self.vocab, self.feature_dims)
            state = payload.get("train_state")
        save = (lambda st: ckpt.save_checkpoint(checkpoint, self._payload(st))) if checkpoint is not None else None
        self.history = train_fn(self.module, tr, va, self.config, seed=self.seed, progress=progress,
                                device=device, resume_state=state, on_epoch_end=save, parallel=parallel)
        self.module.cpu().eval()
        return self

    def _fit_each_base(self, train: pd.DataFrame, valid: pd.DataFrame, **fit_kw) -> LPM:
        """LPMConfig.base_choice = "trained": one LPM per applicable base (same seed, the base fixed), and this
        becomes the one whose predictions score the best mean per-signature r on the validation rows (ties: the
        simpler base); the record keeps every candidate's score."""
        candidates, skipped = self._base_candidates()
        best, scores = None, {}
        for name, flags in candidates.items():
            model = LPM(replace(self.requested_config, base_choice="fixed", **flags), side=self.side, seed=self.seed)
            try:
                model.fit(train, valid, **fit_kw)
            except ValueError as exc:  # similar_contexts_base on a table too large for its dense array
                skipped[name] = str(exc)
                continue
            scores[name] = _validation_r(valid, model.predict(valid))
            if best is None or scores[name] > scores[best[0]]:
                best = (name, model)
        if best is None:
            raise ValueError(f"LPMConfig.base_choice='trained': no base could be fitted ({skipped})")
        requested = self.requested_config
        self.__dict__.update(best[1].__dict__)
        self.requested_config, self._chosen = requested, self.config
        self.base_selection = _base_record(best[0], "trained LPM", scores, skipped, valid)
        return self

    def describe_base(self) -> str:
        """One line on the residual base: e.g. 'similar_contexts (chosen on validation pearson_per_signature of each
        base alone: cross_context 0.8819, similar_contexts 0.8956; not applicable: graph_knn, ...)',
        'cross_context (fixed)', or 'none (not a residual LPM)'."""
        cfg, sel = self.config, self.base_selection
        if not cfg.residual:
            return "none (not a residual LPM)"
        if sel:
            scores = ", ".join(f"{n} {v:.4f}" for n, v in sel["validation"].items())
            skipped = "; not applicable: " + ", ".join(sel["skipped"]) if sel["skipped"] else ""
            by = f" of each {sel['by']}" if sel.get("by") else ""
            return (f"{sel['chosen']} (chosen on validation {sel['metric']}{by}: {scores or 'no validation rows'}"
                    f"{skipped})")
        name = next((n for n, flags in BASE_CANDIDATES.items() if all(getattr(cfg, k) == v for k, v in flags.items())),
                    "graph (H1)")
        return f"{name} (fixed)"

    # ---------------------------------------------------------------- inference
    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    @torch.no_grad()
    def predict(self, rows: pd.DataFrame, chunk: int = 200_000) -> np.ndarray:
        """(n,) float32 predictions for rows with context, perturbation, readout (names may be unseen)."""
        m = self._require()
        m.eval()
        ctxs, perts = _names(rows["context"]), _names(rows["perturbation"])
        t = self._tables(ctxs, perts).to(self._device())
        ci, pi = _codes(rows["context"], ctxs) + 1, _codes(rows["perturbation"], perts) + 1
        ro = _codes(rows["readout"], self.vocab["gene_node"])
        pair_key = ci * (len(perts) + 1) + pi
        pairs, pair_of_row = np.unique(pair_key, return_inverse=True)
        nodes, node_of_row = np.unique(ro, return_inverse=True)
        dev = self._device()
        pc = torch.from_numpy(pairs // (len(perts) + 1)).to(dev)
        pp = torch.from_numpy(pairs % (len(perts) + 1)).to(dev)
        A = m.pair_part(m.embed_contexts(t, pc), m.embed_perturbations(t, pp))  # (P, H)
        B = m.readout_part(m.embed_readouts(torch.from_numpy(nodes).to(dev)))  # (R, H)
        por, nor = torch.from_numpy(pair_of_row).to(dev), torch.from_numpy(node_of_row).to(dev)
        out = [m.head(A[por[i:i + chunk]] + B[nor[i:i + chunk]]) for i in range(0, len(rows), chunk)]
        y = torch.cat(out).double() if out else torch.zeros(0, dtype=torch.float64, device=dev)
        if m.base is not None:  # residual LPM: the network predicted the deviation from the base
            y = y + self._bases(rows, t, perts)[0].to(dev)
        return y.float().cpu().numpy()

    @torch.no_grad()
    def predict_base(self, rows: pd.DataFrame) -> np.ndarray:
        """(n,) float64: the residual base alone (the additive answer the network corrects), for research."""
        m = self._require()
        if m.base is None:
            raise ValueError("predict_base: not a residual LPM (LPMConfig.residual is False)")
        perts = _names(rows["perturbation"])
        t = self._tables(_names(rows["context"]), perts).to(self._device())
        return self._bases(rows, t, perts)[0].cpu().numpy()

    @torch.no_grad()
    def embeddings(self, kind: Literal["perturbation", "readout", "context"], names: list[str] | None = None) -> pd.DataFrame:
        """Embedding vectors (learned vector + encoder) per name; unseen names come from the encoders alone."""
        m = self._require()
        m.eval()
        dev = self._device()
        if kind == "context":
            names = list(names if names is not None else self.vocab["context"])
            e = m.embed_contexts(self._tables(names, []).to(dev), torch.arange(1, len(names) + 1, device=dev))
        elif kind == "perturbation":
            names = list(names if names is not None else self.vocab["perturbation"])
            e = m.embed_perturbations(self._tables([], names).to(dev), torch.arange(1, len(names) + 1, device=dev))
        elif kind == "readout":
            names = list(names if names is not None else self.vocab["gene"])
            e = m.embed_readouts(torch.from_numpy(Vocab(self.vocab["gene_node"]).index(names) - 1).to(dev))
        else:
            raise ValueError(f"kind must be perturbation, readout or context, not {kind!r}")
        return pd.DataFrame(e.cpu().numpy(), index=pd.Index(names, name="name"),
                            columns=[f"e{i}" for i in range(e.shape[1])])

    def _require(self) -> LPMModule:
        if self.module is None:
            raise RuntimeError("LPM is not trained: call fit() or LPM.load()")
        return self.module

    # ---------------------------------------------------------------- persistence
    def _payload(self, train_state: dict | None = None) -> dict:
        side = self.side
        cf = side.context_features
        meta = {
            "json": json.dumps({"compound_smiles": side.compound_smiles, "perturbation_targets": side.perturbation_targets,
                                "perturbation_compounds": side.perturbation_compounds,
                                "perturbation_doses": side.perturbation_doses, "seed": self.seed,
                                "ctx_cols": self._ctx_cols}),
            "ctx_names": [] if cf is None else [str(i) for i in cf.index],
            "ctx_values": torch.zeros(0, 0) if cf is None else torch.from_numpy(cf.to_numpy(np.float32)),
            "ctx_columns": [] if cf is None else [str(c) for c in cf.columns],
            "ctx_mean": torch.from_numpy(self._ctx_std.mean), "ctx_std": torch.from_numpy(self._ctx_std.std),
            "comp_mean": torch.from_numpy(self._comp_std.mean), "comp_std": torch.from_numpy(self._comp_std.std),
        }
        p = {"config": self.config.to_dict(), "vocab": self.vocab, "feature_dims": self.feature_dims,
             "snapshot_id": self.snapshot_id, "meta": meta, "history": self.history,
             "base_selection": self.base_selection,
             "state_dict": {k: v.detach().cpu() for k, v in self._require().state_dict().items()}}
        if train_state is not None:
            p["train_state"] = train_state
        return p

    def save(self, path: str | os.PathLike) -> None:
        ckpt.save_checkpoint(path, self._payload())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LPM:
        """Rebuild from a checkpoint; refuses (CheckpointError) unreadable files and weights that do
        not fit the stored vocabularies / feature dims."""
        p = ckpt.load_checkpoint(path)
        try:
            meta, j = p["meta"], json.loads(p["meta"]["json"])
            cf = None
            if meta["ctx_names"]:
                cf = pd.DataFrame(meta["ctx_values"].numpy(), index=meta["ctx_names"], columns=meta["ctx_columns"])
            # Checkpoints from before LPMConfig.residual existed hold plain (non-residual) models.
            side = SideInformation(compound_smiles=j["compound_smiles"], context_features=cf,
                                   perturbation_targets=j["perturbation_targets"],
                                   perturbation_compounds=j["perturbation_compounds"],
                                   perturbation_doses=j["perturbation_doses"])  # the graph is in the weights
            # ... and before shrink_cross_base was the default, unshrunk bases.
            # ... and before base_choice, fixed bases (only fit reads it: the saved flags are the chosen base's).
            old_defaults = {"residual": False, "shrink_cross_base": False, "base_choice": "fixed"}
            self = cls(LPMConfig(**{**old_defaults, **p["config"]}), side=side, seed=j["seed"])
            self.vocab = {k: list(v) for k, v in p["vocab"].items()}
            self._ctx_cols = j["ctx_cols"]
            self._ctx_std = Standardizer(meta["ctx_mean"].numpy(), meta["ctx_std"].numpy())
            self._comp_std = Standardizer(meta["comp_mean"].numpy(), meta["comp_std"].numpy())
        except (KeyError, TypeError, ValueError) as exc:
            raise ckpt.CheckpointError(f"checkpoint {path}: malformed metadata ({exc})") from exc
        if self.feature_dims != dict(p["feature_dims"]):
            raise ckpt.CheckpointError(f"checkpoint {path}: feature dims {p['feature_dims']} do not match "
                                       f"its metadata ({self.feature_dims})")
        sd = p["state_dict"]
        if "genes.edge_index" not in sd or "genes.edge_weight" not in sd:
            raise ckpt.CheckpointError(f"checkpoint {path}: weights lack the gene graph")
        self.module = self._new_module(sd["genes.edge_index"], sd["genes.edge_weight"])
        ckpt.check_state_shapes(sd, self.module.state_dict(), str(path))
        if not torch.equal(sd["genes.node_sym"], self.module.genes.node_sym):
            raise ckpt.CheckpointError(f"checkpoint {path}: gene vocabulary does not match the gene nodes")
        self.module.load_state_dict(sd)
        self.module.eval()
        self.snapshot_id, self.history = p["snapshot_id"], list(p.get("history", []))
        self.base_selection = dict(p.get("base_selection", {}))  # absent before base_choice existed
        return self


train_fn = train  # `fit` has a parameter named train
__all__ = ["LPM", "LPMConfig", "resolve_device"]
