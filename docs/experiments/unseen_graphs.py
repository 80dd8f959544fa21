"""Two generated directed graphs no default was chosen on, for `blade compare --edges`:

    python docs/experiments/unseen_graphs.py copying /tmp/copying.csv
    python docs/experiments/unseen_graphs.py reciprocal_sbm /tmp/rsbm.csv
    blade compare --edges /tmp/copying.csv --name copying --seeds 42 43 44

copying: the copying model of web and citation growth (Kleinberg et al. 1999): each new node
  draws a prototype among the earlier ones and makes 5 links, each a copy of one of the
  prototype's links with probability 0.7, else to a uniform earlier node. No reciprocal edges.
reciprocal_sbm: 8 communities of 500 nodes; u -> v with probability 0.006 inside a community and
  0.0004 across, times u's activity and v's popularity (lognormal); each edge reciprocated with
  probability 0.3 (46% of the edges end up reciprocal).
Seeded: the same command writes the same file (19,464 and 22,758 edges). docs/decisions.md has
what `blade compare` gave on them.
"""
import sys

import numpy as np
import pandas as pd


def copying(nodes=5000, links=5, p_copy=0.7, seed=1):
    rng = np.random.default_rng(seed)
    out = [[] for _ in range(links + 1)]
    edges = []
    for u in range(1, links + 1):  # a small complete DAG to copy from
        out[u] = list(range(u))
        edges += [(u, v) for v in out[u]]
    for u in range(links + 1, nodes):
        prototype = int(rng.integers(0, u))
        chosen = set()
        for _ in range(links):
            if out[prototype] and rng.random() < p_copy:
                chosen.add(int(rng.choice(out[prototype])))
            else:
                chosen.add(int(rng.integers(0, u)))
        out.append(sorted(chosen))
        edges += [(u, v) for v in chosen]
    return edges


def reciprocal_sbm(blocks=8, size=500, p_in=0.006, p_out=0.0004, reciprocity=0.3, seed=2):
    rng = np.random.default_rng(seed)
    nodes = blocks * size
    block = np.repeat(np.arange(blocks), size)
    activity = rng.lognormal(0, 1, nodes)
    activity /= activity.mean()
    popularity = rng.lognormal(0, 1, nodes)
    popularity /= popularity.mean()
    edges = set()
    for u in range(nodes):
        p = np.where(block == block[u], p_in, p_out) * activity[u] * popularity
        p[u] = 0
        for v in np.nonzero(rng.random(nodes) < np.minimum(p, 1))[0]:
            edges.add((u, int(v)))
            if rng.random() < reciprocity:
                edges.add((int(v), u))
    return sorted(edges)


kind, path = sys.argv[1], sys.argv[2]
generate = {"copying": copying, "reciprocal_sbm": reciprocal_sbm}[kind]
frame = pd.DataFrame(generate(), columns=["source", "target"])
frame = frame.drop_duplicates()
frame = frame[frame.source != frame.target]
reverse = set(zip(frame.target, frame.source))
share = np.mean([edge in reverse for edge in zip(frame.source, frame.target)])
print(f"{kind}: {len(frame):,} edges, {frame.values.max() + 1:,} nodes, {share:.3f} of them reciprocal")
frame.to_csv(path, index=False)
