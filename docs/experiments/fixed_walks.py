"""The walk channel's four walks at the fixed settings it used until 2026-12-07 (steps weighted
1, 3, 3; RP3beta alpha 0.5, beta 0), which the figures of the scripts beside this one were
measured with, and the lambda grid it used until 2026-12-07 (up to 32). The channel now takes
each walk at its baseline's grid point (models.walk_channel.choose_walk_channel), and lambda up
to 8192."""
from models.baselines import rp3beta_scores, walk_scores

WALKS = {
    "walk on A + A^T": lambda edges, nodes: walk_scores(edges, nodes, (1.0, 3.0, 3.0), symmetric=True),
    "walk on A": lambda edges, nodes: walk_scores(edges, nodes, (1.0, 3.0, 3.0), symmetric=False),
    "RP3beta on A + A^T": lambda edges, nodes: rp3beta_scores(edges, nodes, 0.5, 0.0, symmetric=True),
    "RP3beta on A": lambda edges, nodes: rp3beta_scores(edges, nodes, 0.5, 0.0, symmetric=False),
}

WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
