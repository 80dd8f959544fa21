"""A directed graph nobody tuned for: networkx's preferential-attachment digraph (Bollobas et al.),
4,000 nodes, self-loops and parallel edges dropped (7,188 edges), written as a CSV edge list.

    python docs/experiments/scalefree_graph.py /tmp/scalefree.csv
    blade compare --edges /tmp/scalefree.csv --name scalefree --seeds 42 43 44
docs/decisions.md has what the comparison printed.
"""
import sys

import networkx as nx
import pandas as pd

graph = nx.DiGraph(nx.scale_free_graph(4000, alpha=0.3, beta=0.5, gamma=0.2, seed=7))
graph.remove_edges_from(nx.selfloop_edges(graph))
pd.DataFrame(list(graph.edges()), columns=["source", "target"]).to_csv(sys.argv[1], index=False)
print(f"{graph.number_of_edges():,} edges -> {sys.argv[1]}")
