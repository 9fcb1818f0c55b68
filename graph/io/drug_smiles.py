"""A small built-in table of well-known drugs: name, SMILES, primary target gene symbols, mechanism.

Used by the simulated default dataset (`graph.simulated`) so that a fresh machine without the
shared data still has compounds with real structures whose simulated effects follow their real
primary targets. Only facts are recorded here: the structure (typed as SMILES; every entry is
checked to parse with RDKit in tests/test_simulated.py) and the primary, well-established
targets (HGNC symbols). Secondary and off-targets are deliberately left out: the simulation adds
its own structure-dependent off-target component.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drug:
    name: str  # lower-case, CMap-style spelling (hyphenated where CMap hyphenates)
    smiles: str
    targets: tuple[str, ...]  # primary targets, HGNC symbols
    moa: str


# One drug per line: name, SMILES, primary targets ('|'), mechanism (the rest of the line), separated by
# spaces (none of the first three holds one). Grouped by mechanism so that structurally related members
# sit together (the statins, the quinazoline EGFR inhibitors, the camptothecins): the simulation relies
# on that for "similar structure, similar effect".
_TABLE = r"""
# tyrosine kinase inhibitors
imatinib Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1 ABL1|KIT Abl kinase inhibitor
nilotinib Cc1ccc(cc1Nc1nccc(n1)-c1cccnc1)C(=O)Nc1cc(cc(c1)C(F)(F)F)-n1cnc(C)c1 ABL1 Abl kinase inhibitor
dasatinib Cc1nc(Nc2ncc(s2)C(=O)Nc2c(C)cccc2Cl)cc(n1)N1CCN(CCO)CC1 ABL1|SRC Abl kinase inhibitor|Src inhibitor
erlotinib COCCOc1cc2ncnc(Nc3cccc(c3)C#C)c2cc1OCCOC EGFR EGFR inhibitor
gefitinib COc1cc2ncnc(Nc3ccc(F)c(Cl)c3)c2cc1OCCCN1CCOCC1 EGFR EGFR inhibitor
lapatinib CS(=O)(=O)CCNCc1ccc(o1)-c1ccc2ncnc(Nc3ccc(OCc4cccc(F)c4)c(Cl)c3)c2c1 EGFR|ERBB2 EGFR inhibitor|ErbB2 inhibitor
afatinib CN(C)C/C=C/C(=O)Nc1cc2c(Nc3ccc(F)c(Cl)c3)ncnc2cc1O[C@H]1CCOC1 EGFR|ERBB2 EGFR inhibitor
crizotinib C[C@@H](Oc1cc(-c2cnn(c2)C2CCNCC2)cnc1N)c1c(Cl)ccc(F)c1Cl ALK|MET ALK inhibitor|MET inhibitor
sorafenib CNC(=O)c1cc(Oc2ccc(NC(=O)Nc3ccc(Cl)c(c3)C(F)(F)F)cc2)ccn1 RAF1|BRAF|KDR RAF inhibitor|VEGFR inhibitor
# RAF / MEK
vemurafenib CCCS(=O)(=O)Nc1ccc(F)c(C(=O)c2c[nH]c3ncc(-c4ccc(Cl)cc4)cc23)c1F BRAF RAF inhibitor
dabrafenib CC(C)(C)c1nc(-c2cccc(NS(=O)(=O)c3c(F)cccc3F)c2F)c(-c2ccnc(N)n2)s1 BRAF RAF inhibitor
trametinib CC(=O)Nc1cccc(c1)-n1c2c(C)c(=O)n(C)c(Nc3ccc(I)cc3F)c2c(=O)n(C2CC2)c1=O MAP2K1|MAP2K2 MEK inhibitor
selumetinib Cn1cnc2c(F)c(Nc3ccc(Br)cc3Cl)c(C(=O)NOCCO)cc21 MAP2K1|MAP2K2 MEK inhibitor
pd-0325901 OC[C@@H](O)CONC(=O)c1ccc(F)c(F)c1Nc1ccc(I)cc1F MAP2K1|MAP2K2 MEK inhibitor
# CDK / JAK
palbociclib CC(=O)c1c(C)c2cnc(Nc3ccc(cn3)N3CCNCC3)nc2n(C2CCCC2)c1=O CDK4|CDK6 CDK inhibitor
ruxolitinib N#CC[C@H](C1CCCC1)n1cc(-c2ncnc3[nH]ccc23)cn1 JAK1|JAK2 JAK inhibitor
tofacitinib C[C@@H]1CCN(C[C@@H]1N(C)c1ncnc2[nH]ccc12)C(=O)CC#N JAK1|JAK3 JAK inhibitor
# PI3K / mTOR
sirolimus C[C@@H]1CC[C@H]2C[C@@H](/C(=C/C=C/C=C/[C@H](C[C@H](C(=O)[C@@H]([C@@H](/C(=C/[C@H](C(=O)C[C@H](OC(=O)[C@@H]3CCCCN3C(=O)C(=O)[C@@]1(O2)O)[C@H](C)C[C@@H]4CC[C@H]([C@@H](C4)OC)O)C)/C)O)OC)C)C)/C)OC MTOR MTOR inhibitor
everolimus C[C@@H]1CC[C@H]2C[C@@H](/C(=C/C=C/C=C/[C@H](C[C@H](C(=O)[C@@H]([C@@H](/C(=C/[C@H](C(=O)C[C@H](OC(=O)[C@@H]3CCCCN3C(=O)C(=O)[C@@]1(O2)O)[C@H](C)C[C@@H]4CC[C@H]([C@@H](C4)OC)OCCO)C)/C)O)OC)C)C)/C)OC MTOR MTOR inhibitor
torin-1 CCC(=O)N1CCN(CC1)c1ccc(cc1C(F)(F)F)-n1c(=O)ccc2cnc3ccc(cc3c21)-c1cnc2ccccc2c1 MTOR MTOR inhibitor
ly-294002 O=c1cc(N2CCOCC2)oc2c(-c3ccccc3)cccc12 PIK3CA|MTOR PI3K inhibitor
alpelisib Cc1nc(NC(=O)N2CCC[C@H]2C(N)=O)sc1-c1ccnc(c1)C(C)(C)C(F)(F)F PIK3CA PI3K inhibitor
buparlisib Nc1cc(C(F)(F)F)c(-c2cc(N3CCOCC3)nc(N3CCOCC3)n2)cn1 PIK3CA PI3K inhibitor
# HDAC / bromodomain
vorinostat ONC(=O)CCCCCCC(=O)Nc1ccccc1 HDAC1|HDAC2|HDAC3|HDAC6 HDAC inhibitor
trichostatin-a CN(C)c1ccc(cc1)C(=O)[C@H](C)/C=C(C)/C=C/C(=O)NO HDAC1|HDAC2|HDAC3|HDAC6 HDAC inhibitor
panobinostat Cc1[nH]c2ccccc2c1CCNCc1ccc(/C=C/C(=O)NO)cc1 HDAC1|HDAC2|HDAC3|HDAC6 HDAC inhibitor
belinostat O=C(/C=C/c1cccc(S(=O)(=O)Nc2ccccc2)c1)NO HDAC1|HDAC2|HDAC6 HDAC inhibitor
entinostat Nc1ccccc1NC(=O)c1ccc(CNC(=O)OCc2cccnc2)cc1 HDAC1|HDAC3 HDAC inhibitor
jq1 Cc1sc2c(c1C)C(c1ccc(Cl)cc1)=N[C@@H](CC(=O)OC(C)(C)C)c1nnc(C)n1-2 BRD4 bromodomain inhibitor
# HMG-CoA reductase (statins)
atorvastatin CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O HMGCR HMGCR inhibitor
simvastatin CCC(C)(C)C(=O)O[C@H]1C[C@@H](C)C=C2C=C[C@H](C)[C@H](CC[C@@H]3C[C@@H](O)CC(=O)O3)[C@@H]12 HMGCR HMGCR inhibitor
lovastatin CC[C@H](C)C(=O)O[C@H]1C[C@@H](C)C=C2C=C[C@H](C)[C@H](CC[C@@H]3C[C@@H](O)CC(=O)O3)[C@@H]12 HMGCR HMGCR inhibitor
rosuvastatin CC(C)c1nc(N(C)S(C)(=O)=O)nc(-c2ccc(F)cc2)c1/C=C/[C@@H](O)C[C@@H](O)CC(=O)O HMGCR HMGCR inhibitor
fluvastatin CC(C)n1c(/C=C/[C@@H](O)C[C@@H](O)CC(=O)O)c(-c2ccc(F)cc2)c2ccccc21 HMGCR HMGCR inhibitor
# proteasome / HSP90
bortezomib CC(C)C[C@H](NC(=O)[C@H](Cc1ccccc1)NC(=O)c1cnccn1)B(O)O PSMB5 proteasome inhibitor
mg-132 CC(C)C[C@H](NC(=O)[C@H](CC(C)C)NC(=O)[C@H](CC(C)C)NC(=O)OCc1ccccc1)C=O PSMB5 proteasome inhibitor
luminespib CCNC(=O)c1noc(-c2cc(C(C)C)c(O)cc2O)c1-c1ccc(CN2CCOCC2)cc1 HSP90AA1 HSP inhibitor
# topoisomerases
camptothecin CC[C@@]1(O)C(=O)OCc2c1cc1-c3nc4ccccc4cc3Cn1c2=O TOP1 topoisomerase inhibitor
topotecan CC[C@@]1(O)C(=O)OCc2c1cc1-c3nc4ccc(O)c(CN(C)C)c4cc3Cn1c2=O TOP1 topoisomerase inhibitor
irinotecan CCc1c2c(nc3ccc(OC(=O)N4CCC(N5CCCCC5)CC4)cc13)-c1cc3c(c(=O)n1C2)COC(=O)[C@]3(O)CC TOP1 topoisomerase inhibitor
etoposide COc1cc([C@@H]2c3cc4c(cc3[C@@H](O[C@@H]3O[C@@H]5CO[C@@H](C)O[C@H]5[C@H](O)[C@H]3O)[C@H]3COC(=O)[C@H]23)OCO4)cc(OC)c1O TOP2A topoisomerase inhibitor
doxorubicin COc1cccc2c1C(=O)c1c(O)c3c(c(O)c1C2=O)C[C@@](O)(C(=O)CO)C[C@@H]3O[C@H]1C[C@H](N)[C@H](O)[C@H](C)O1 TOP2A topoisomerase inhibitor
mitoxantrone OCCNCCNc1ccc(NCCNCCO)c2c1C(=O)c1c(O)ccc(O)c1C2=O TOP2A topoisomerase inhibitor
# microtubules
colchicine COc1ccc2c(cc1=O)[C@@H](NC(C)=O)CCc1cc(OC)c(OC)c(OC)c1-2 TUBB tubulin polymerization inhibitor
podophyllotoxin COc1cc(cc(OC)c1OC)[C@H]1[C@@H]2[C@H](COC2=O)[C@@H](O)c2cc3OCOc3cc12 TUBB tubulin polymerization inhibitor
nocodazole COC(=O)Nc1nc2cc(C(=O)c3cccs3)ccc2[nH]1 TUBB tubulin polymerization inhibitor
# DNA synthesis / repair
methotrexate CN(Cc1cnc2nc(N)nc(N)c2n1)c1ccc(cc1)C(=O)N[C@@H](CCC(=O)O)C(=O)O DHFR dihydrofolate reductase inhibitor
fluorouracil O=c1[nH]cc(F)c(=O)[nH]1 TYMS thymidylate synthase inhibitor
gemcitabine Nc1ccn([C@@H]2O[C@H](CO)[C@@H](O)C2(F)F)c(=O)n1 RRM1 ribonucleotide reductase inhibitor
hydroxyurea NC(=O)NO RRM2 ribonucleotide reductase inhibitor
olaparib O=C(c1cc(Cc2n[nH]c(=O)c3ccccc23)ccc1F)N1CCN(C(=O)C2CC2)CC1 PARP1|PARP2 PARP inhibitor
nutlin-3 COc1ccc(C2=N[C@@H](c3ccc(Cl)cc3)[C@@H](c3ccc(Cl)cc3)N2C(=O)N2CCNC(=O)C2)c(OC(C)C)c1 MDM2 MDM inhibitor
# nuclear receptors / inflammation
tamoxifen CC/C(=C(\c1ccccc1)c1ccc(OCCN(C)C)cc1)c1ccccc1 ESR1 estrogen receptor antagonist
bicalutamide CC(O)(CS(=O)(=O)c1ccc(F)cc1)C(=O)Nc1ccc(C#N)c(C(F)(F)F)c1 AR androgen receptor antagonist
enzalutamide CNC(=O)c1ccc(N2C(=S)N(c3ccc(C#N)c(C(F)(F)F)c3)C(=O)C2(C)C)cc1F AR androgen receptor antagonist
dexamethasone C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@]4(C)[C@@]3(F)[C@@H](O)C[C@]2(C)[C@@]1(O)C(=O)CO NR3C1 glucocorticoid receptor agonist
celecoxib Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1 PTGS2 cyclooxygenase inhibitor
"""


def _drug(line: str) -> Drug:
    name, smiles, targets, moa = line.split(maxsplit=3)
    return Drug(name, smiles, tuple(targets.split("|")), moa)


DRUGS: tuple[Drug, ...] = tuple(_drug(line) for line in _TABLE.splitlines() if line.strip() and not line.startswith("#"))

DRUGS_BY_NAME: dict[str, Drug] = {d.name: d for d in DRUGS}


def drug_targets() -> tuple[str, ...]:
    """All target symbols of the built-in drugs, sorted."""
    return tuple(sorted({t for d in DRUGS for t in d.targets}))
