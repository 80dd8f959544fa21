"""A directed graph nobody tuned for: networkx's preferential-attachment digraph (Bollobas et al.),
4,000 nodes, self-loops and parallel edges dropped (7,188 edges), written as a CSV edge list.

    python docs/experiments/scalefree_graph.py data/scalefree/scalefree.csv

made the bundled copy (data/scalefree/README.md); the same command gives the same bytes.
"""
import sys
from pathlib import Path

import networkx as nx
import pandas as pd

graph = nx.DiGraph(nx.scale_free_graph(4000, alpha=0.3, beta=0.5, gamma=0.2, seed=7))
graph.remove_edges_from(nx.selfloop_edges(graph))
path = Path(sys.argv[1])
path.parent.mkdir(parents=True, exist_ok=True)
partial = path.with_name(path.name + ".partial")  # the file lands whole
pd.DataFrame(list(graph.edges()), columns=["source", "target"]).to_csv(partial, index=False)
partial.replace(path)
print(f"{graph.number_of_edges():,} edges -> {path}")
