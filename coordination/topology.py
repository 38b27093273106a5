"""Communication topology of the storage agents: consensus matrix, SLEM, plain and optimized graphs.

Links are undirected (a fibre or radio link carries both directions), so a link set is
strongly connected exactly when it is connected. Nodes are the storage agents, numbered
0..n-1 in the order of the candidate buses.

Glossary (the paper's Section III-A and (24)):

* ``consensus_matrix`` = A of (6): ``A[i, i] = A[i, j] = 1 / (1 + X_i^+)`` for every
  in-neighbour j of i, with X_i^+ the in-degree (= degree for undirected links);
* ``slem`` = phi(A) of (24): the second-largest eigenvalue modulus of A; consensus
  ``x[k+1] = A x[k]`` (7) shrinks the disagreement like ``slem**k``, so the rounds to a
  relative tolerance ``tol`` are predicted by ``log(tol) / log(slem)``
  (:func:`predicted_rounds`);
* ``link_cost`` = the annualized investment of one link (CRF of the STU life times fixed
  cost plus cost per km of route along the feeder).

Topology optimization (:func:`optimize_topology`): minimize the SLEM over connected link
sets G whose link cost fits a budget (:func:`budget_for`: a multiple of the cost of the
links along the feeder), or ``slem_cost * slem(A(G)) + sum of link costs``. A seeded simulated-annealing local search over add / remove /
swap moves, started from every plain topology, keeps the best graph it sees; the graphs
are small (at most a few dozen nodes), so every move is checked with a full eigenvalue
solve. :func:`exhaustive_best` solves tiny instances exactly for the tests.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from scenarios.errors import ScenarioError

Edge = tuple[int, int]


class TopologyError(ScenarioError):
    """A link set that the consensus cannot run on (disconnected, self-loops, unknown nodes)."""


def normalize(edges, n: int) -> frozenset[Edge]:
    """Undirected links as sorted pairs; refuses self-loops and unknown nodes."""
    out = set()
    for e in edges:
        i, j = (int(e[0]), int(e[1]))
        if i == j:
            raise TopologyError(f"link {e} joins node {i} to itself; remove it")
        if not (0 <= i < n and 0 <= j < n):
            raise TopologyError(f"link {e} names a node outside 0..{n - 1}")
        out.add((min(i, j), max(i, j)))
    return frozenset(out)


def is_connected(n: int, edges) -> bool:
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    return n <= 1 or nx.is_connected(g)


def check_connected(n: int, edges, labels=None) -> None:
    """Raise :class:`TopologyError` naming the isolated groups when ``edges`` is not connected."""
    if is_connected(n, edges):
        return
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    groups = [sorted(c) for c in nx.connected_components(g)]
    if labels is not None:
        groups = [[labels[k] for k in c] for c in groups]
    raise TopologyError(
        f"the communication links do not connect all storage agents (groups {groups}); consensus needs a "
        "strongly connected graph: add a link between the groups"
    )


def consensus_matrix(n: int, edges) -> np.ndarray:
    """A of (6): row i has 1/(1 + degree_i) on i and on each neighbour."""
    adj = np.eye(n)
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1.0
    return adj / adj.sum(axis=1, keepdims=True)


def slem(a: np.ndarray) -> float:
    """Second-largest eigenvalue modulus of ``a`` (0 for a single node)."""
    if len(a) < 2:
        return 0.0
    mods = np.sort(np.abs(np.linalg.eigvals(a)))[::-1]
    return float(mods[1])


def _sym_slem(n: int, edges) -> float:
    """SLEM of A(G) for undirected links: A = D^-1 (I + Adj) is similar to the symmetric
    D^-1/2 (I + Adj) D^-1/2, so its eigenvalues are real; 1.0 means disconnected."""
    if n < 2:
        return 0.0
    adj = np.eye(n)
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1.0
    d = 1.0 / np.sqrt(adj.sum(axis=1))
    vals = np.linalg.eigvalsh(adj * d[:, None] * d[None, :])
    mods = np.sort(np.abs(vals))[::-1]
    return float(min(1.0, mods[1]))


def graph_slem(n: int, edges) -> float:
    return _sym_slem(n, edges)


def stationary_weights(a: np.ndarray) -> np.ndarray:
    """Left Perron vector pi of A (pi A = pi, sum 1): consensus converges to pi @ x[0]."""
    vals, vecs = np.linalg.eig(a.T)
    k = int(np.argmin(np.abs(vals - 1.0)))
    pi = np.real(vecs[:, k])
    return pi / pi.sum()


def predicted_rounds(slem_value: float, tol: float) -> float:
    """log(tol) / log(slem): rounds for the disagreement to shrink by ``tol``."""
    if slem_value <= 0:
        return 1.0
    if slem_value >= 1:
        return math.inf
    return math.log(tol) / math.log(slem_value)


def link_costs(hops: np.ndarray, fixed_cny: float, per_km_cny: float, km_per_hop: float, crf: float) -> np.ndarray:
    """Annualized cost of a link between every pair of nodes (route along the feeder)."""
    return crf * (fixed_cny + per_km_cny * km_per_hop * np.asarray(hops, dtype=float))


def edges_cost(edges, cost: np.ndarray) -> float:
    return float(sum(cost[i, j] for i, j in edges))


# --- plain topologies -----------------------------------------------------------------------


def feeder_topology(cost: np.ndarray) -> frozenset[Edge]:
    """Links along the feeder: the minimum-cost spanning tree of the route lengths."""
    n = len(cost)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for i, j in itertools.combinations(range(n), 2):
        g.add_edge(i, j, weight=float(cost[i, j]))
    return normalize(nx.minimum_spanning_tree(g).edges(), n)


def ring_topology(n: int) -> frozenset[Edge]:
    """Nodes in candidate order, each linked to the next, the last to the first."""
    if n < 3:
        return normalize([(0, 1)] if n == 2 else [], n)
    return normalize([(k, (k + 1) % n) for k in range(n)], n)


def star_topology(cost: np.ndarray) -> frozenset[Edge]:
    """Every node linked to the hub, the node with the cheapest links to all others."""
    n = len(cost)
    hub = int(np.argmin(cost.sum(axis=1)))
    return normalize([(hub, k) for k in range(n) if k != hub], n)


def complete_topology(n: int) -> frozenset[Edge]:
    return normalize(itertools.combinations(range(n), 2), n)


def plain_topologies(cost: np.ndarray) -> dict[str, frozenset[Edge]]:
    n = len(cost)
    return {
        "feeder": feeder_topology(cost),
        "ring": ring_topology(n),
        "star": star_topology(cost),
        "complete": complete_topology(n),
    }


# --- optimization ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TopologyResult:
    edges: frozenset[Edge]
    slem: float
    link_cost_cny: float
    objective_cny: float  #: slem_cost * slem + link cost (the lower layer's objective)
    evaluations: int


def _objective(n, edges, cost, slem_cost, budget):
    s = _sym_slem(n, edges)
    if s > 1.0 - 1e-9:  # eigenvalue 1 repeated: the links do not connect all nodes
        return math.inf, 1.0, math.inf
    c = edges_cost(edges, cost)
    if budget is not None and c > budget * (1 + 1e-9):
        return math.inf, s, c
    if slem_cost == 0:  # the smallest SLEM within the budget; the link cost breaks ties
        return s + 1e-12 * c, s, c
    return slem_cost * s + c, s, c


def optimize_topology(
    cost: np.ndarray,
    slem_cost: float,
    rng: np.random.Generator,
    budget: float | None = None,
    moves: int = 600,
    starts: dict[str, frozenset[Edge]] | None = None,
) -> TopologyResult:
    """Connected link set minimizing ``slem_cost * SLEM + link cost`` within ``budget`` (if given).

    With ``slem_cost = 0`` this is "the smallest SLEM the budget buys", ties broken by the
    lower link cost: the lower layer of the planning (see docs/cpds33.md for why a budget and
    not a price on the SLEM: with the matrix (6), the star reaches SLEM 0.5 at a low cost and
    any price on the SLEM picks either the star or the complete graph).

    Simulated annealing over add / remove / swap moves from each start (default: the plain
    topologies that fit the budget); the best graph seen is returned.
    """
    n = len(cost)
    if n == 1:
        return TopologyResult(frozenset(), 0.0, 0.0, 0.0, 0)
    all_pairs = list(itertools.combinations(range(n), 2))
    starts = dict(starts or plain_topologies(cost))
    best = None
    evals = 0
    for name in sorted(starts):
        cur = frozenset(starts[name])
        cur_obj, s, c = _objective(n, cur, cost, slem_cost, budget)
        evals += 1
        if not math.isfinite(cur_obj):
            continue
        if best is None or cur_obj < best[0]:
            best = (cur_obj, cur, s, c)
        temp = 0.05 * abs(cur_obj) + 1e-9
        for k in range(moves):
            kind = rng.integers(3)
            present = sorted(cur)
            absent = [e for e in all_pairs if e not in cur]
            if kind == 0 and absent:
                cand = cur | {absent[rng.integers(len(absent))]}
            elif kind == 1 and len(present) > n - 1:
                cand = cur - {present[rng.integers(len(present))]}
            elif present and absent:
                cand = (cur - {present[rng.integers(len(present))]}) | {absent[rng.integers(len(absent))]}
            else:
                continue
            obj, s, c = _objective(n, cand, cost, slem_cost, budget)
            evals += 1
            if not math.isfinite(obj):
                continue
            if obj < cur_obj or rng.random() < math.exp(-(obj - cur_obj) / temp):
                cur, cur_obj = cand, obj
                if obj < best[0]:
                    best = (obj, cand, s, c)
            temp *= 0.99
    if best is None:
        raise TopologyError(f"no connected topology within the link budget {budget:.4g}; raise the budget")
    _, edges, s, c = best
    return TopologyResult(edges, s, c, slem_cost * s + c, evals)


def budget_for(cost: np.ndarray, factor: float) -> float:
    """The link budget: ``factor`` times the cost of the links along the feeder."""
    return factor * edges_cost(feeder_topology(cost), cost)


def exhaustive_best(cost: np.ndarray, slem_cost: float) -> TopologyResult:
    """The exact optimum by enumeration (only for n <= 5: 2^10 link sets)."""
    n = len(cost)
    if n > 5:
        raise ValueError("exhaustive search is for n <= 5 nodes")
    pairs = list(itertools.combinations(range(n), 2))
    best = None
    for mask in range(1, 2 ** len(pairs)):
        edges = frozenset(p for b, p in enumerate(pairs) if mask >> b & 1)
        obj, s, c = _objective(n, edges, cost, slem_cost, None)
        if math.isfinite(obj) and (best is None or obj < best[0]):
            best = (obj, edges, s, c)
    _, edges, s, c = best
    return TopologyResult(edges, s, c, slem_cost * s + c, 2 ** len(pairs))


def directed_pairs(edges, labels) -> list[list[str]]:
    """[sender, receiver] pairs, each undirected link listed both ways, with agent labels."""
    out = []
    for i, j in sorted(edges):
        out.append([labels[i], labels[j]])
        out.append([labels[j], labels[i]])
    return out
