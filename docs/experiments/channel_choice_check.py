"""Does the walk channel's search (each walk at its baseline's grid point) pick the same channel
as a saved model's, fitted with the fixed walks of before 2026-12-07?

Run from the repository root after `blade ingest` on amazon0302 (seed 42), with embeddings saved
by `blade train --set 'train.variants=[blade]' --set train.use_tuned=false` at an earlier commit:
    python docs/experiments/channel_choice_check.py EMBEDDINGS.pt
Validation edges only (training's 5,000-edge sample); docs/decisions.md has what it printed.
"""
import sys
import time

import torch

from models.encoder import score as embedding_score
from models.training import validation_set
from models.walk_channel import WalkChannel, choose_walk_channel
from pipeline.artifacts import load_split_graph
from pipeline.train import channel_walks

torch.set_num_threads(2)
graph = load_split_graph()
saved = torch.load(sys.argv[1], weights_only=True)
source, target, scale = saved["source"], saved["target"], saved["scale"]
before = WalkChannel.from_dict(saved["walk_channel"])
validation = validation_set(graph, 5000, 42)
started = time.time()
channel, report = choose_walk_channel(lambda queries: embedding_score(source[queries], target, scale),
                                      graph.num_nodes, validation.edges, validation.exclude_indptr,
                                      validation.exclude_indices, channel_walks(graph, None))
print(report, f"({time.time() - started:.0f} s)")
print("lambda, epsilon before", before.weight, before.floor, "now", channel.weight, channel.floor)
print("same table:", torch.equal(before.index, channel.index) and torch.equal(before.value, channel.value))
