import pytest
import torch

from models.metrics import filtered_ranks, out_neighbour_csr, ranking_metrics
from models.walk_channel import (
    WalkChannel,
    fit_walk_channel,
    pair_bonus,
    top_walk_table,
    with_walk_channel,
)

# the 5-node graph of test_baselines: 0 -> 1, 0 -> 2, 1 -> 2, 1 -> 3, 2 -> 3, 3 -> 4
TRAIN = torch.tensor([[0, 0, 1, 1, 2, 3], [1, 2, 2, 3, 3, 4]])
N = 5


def test_table_keeps_the_largest_walk_entries_without_the_query():
    # W = P + P^2 on A + A^T; W[0] = [1/3, 2/3, 2/3, 1/3, 0]: the return to 0 is dropped;
    # 1 and 2 (2/3) first, then 3 (1/3); width 4 leaves one padding slot (0 itself, value 0).
    # Values are divided by the mean of the rows' largest entries (the query left out):
    # rows 0-4: 2/3, 11/18, 11/18, 4/9, 1 -> mean 2/3, so row 0 reads [1, 1, 1/2, 0]
    table = top_walk_table(TRAIN, N, (1, 1), width=4, chunk_size=2)
    assert table.index.shape == (N, 4)
    assert sorted(table.index[0, :2].tolist()) == [1, 2]
    assert table.index[0, 2].item() == 3
    torch.testing.assert_close(table.value[0], torch.tensor([1.0, 1.0, 0.5, 0.0]))
    assert table.index[0, 3].item() == 0
    # width 1, one step: node 4's only neighbour is 3 (P4 = [0, 0, 0, 1, 0]); the rows' largest
    # entries 1/2, 1/3, 1/3, 1/3, 1 have mean 1/2, so it reads 2
    narrow = top_walk_table(TRAIN, N, (1,), width=1)
    assert narrow.index[4].tolist() == [3] and narrow.value[4].tolist() == [2.0]
    with pytest.raises(ValueError, match="width"):
        top_walk_table(TRAIN, N, (1,), width=0)


@pytest.mark.parametrize("weights", [(1.0,), (1.0, 1.0, 1.0)])
@pytest.mark.parametrize("chunk_entries", [1, 50, 1 << 24])
def test_table_is_each_rows_largest_entries_whatever_the_chunking(weights, chunk_entries):
    # One step: every entry of a row is 1/degree, so the table is all ties and keeps the
    # smallest ids; three steps: distinct values. A chunk of 1 entry is one row per chunk.
    from models.baselines import walk_scores
    from models.walk_channel import top_table

    generator = torch.Generator().manual_seed(0)
    nodes, width = 30, 4
    edges = torch.randint(0, nodes, (2, 120), generator=generator)
    walk = walk_scores(edges, nodes, weights, symmetric=True)
    dense = walk.raw_rows(torch.arange(nodes).numpy()).toarray()
    dense[range(nodes), range(nodes)] = 0.0
    expected_index = torch.arange(nodes).reshape(-1, 1).repeat(1, width)
    expected_value = torch.zeros(nodes, width)
    for node in range(nodes):
        ranked = sorted((-dense[node, x], x) for x in range(nodes) if dense[node, x] > 0)[:width]
        for slot, (negative, x) in enumerate(ranked):
            expected_index[node, slot], expected_value[node, slot] = x, float(-negative)
    expected_value /= expected_value[expected_value[:, 0] > 0, 0].mean()
    table = top_table(walk, nodes, width, chunk_size=8, chunk_entries=chunk_entries)
    assert torch.equal(table.index, expected_index)
    torch.testing.assert_close(table.value, expected_value)


def test_channel_adds_lambda_log_evidence_at_table_entries():
    table = top_walk_table(TRAIN, N, (1, 1), width=4)
    channel = WalkChannel(table.index, table.value, weight=2.0, floor=0.5)
    rows = with_walk_channel(lambda q: torch.zeros(q.numel(), N), channel)
    # row 0's values [1, 1, 1/2, 0] (above): bonus = 2 log(1 + W / 0.5) = 2 log 3, 2 log 3,
    # 2 log 2 and 0 at the padding slot
    log2, log3 = torch.log(torch.tensor(2.0)), torch.log(torch.tensor(3.0))
    torch.testing.assert_close(rows(torch.tensor([0]))[0], torch.stack(
        [torch.tensor(0.0), 2 * log3, 2 * log3, 2 * log2, torch.tensor(0.0)]))
    torch.testing.assert_close(pair_bonus(channel, torch.tensor([0, 0, 0]), torch.tensor([1, 3, 4])),
                               torch.stack([2 * log3, 2 * log2, torch.tensor(0.0)]))
    # weight 0 (or no channel) is the rows unchanged
    assert with_walk_channel(rows, None) is rows
    assert pair_bonus(None, torch.tensor([0]), torch.tensor([1])).tolist() == [0.0]


def test_fit_ranks_every_grid_point_exactly_as_the_evaluator_does():
    generator = torch.Generator().manual_seed(0)
    nodes = 40
    train = torch.randint(0, nodes, (2, 160), generator=generator)
    train = train[:, train[0] != train[1]]
    edges = torch.randint(0, nodes, (2, 60), generator=generator)
    edges = edges[:, edges[0] != edges[1]]
    source, target = torch.randn(nodes, 8, generator=generator), torch.randn(nodes, 8, generator=generator)

    def rows(queries):
        return source[queries] @ target.T

    table = top_walk_table(train, nodes, (1, 3, 3), width=6)
    indptr, indices = out_neighbour_csr(train, nodes)
    fit = fit_walk_channel(rows, table, edges, indptr, indices, depth=nodes, chunk_size=16,
                           weights=(0.0, 0.5, 2.0), floors=(1e-2, 1e-1))
    assert len(fit["grid"]) == 6
    for weight, floor, mrr in fit["grid"]:
        fused = with_walk_channel(rows, WalkChannel(table.index, table.value, weight, floor))
        ranks = filtered_ranks(fused, edges[0], edges[1], indptr, indices, nodes)
        assert mrr == pytest.approx(ranking_metrics(ranks, (10,))["mrr@10"], abs=1e-6)
    best = max(mrr for _, _, mrr in fit["grid"])
    assert fit["mrr@10"] == pytest.approx(best)
    assert fit["mrr@10_without"] == next(m for w, _, m in fit["grid"] if w == 0.0)


def test_fit_turns_the_channel_on_only_when_the_walk_helps():
    indptr, indices = out_neighbour_csr(TRAIN, N)
    table = top_walk_table(TRAIN, N, (1,), width=2)
    # node 3's one-step neighbours 1, 2, 4 tie at 1/3: the table keeps the lower ids 1 and 2.
    assert table.index[3].tolist() == [1, 2]
    # held-out edges the walk predicts (reverse edges: 3 -> 1, 4 -> 3) and uninformative rows
    # that put the worst candidate first: the channel must be switched on
    edges = torch.tensor([[3, 4], [1, 3]])
    wrong = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0],
                          [5.0, 0.0, 0.0, 0, 0], [5.0, 0.0, 0.0, 0.0, 0]])
    fit = fit_walk_channel(lambda q: wrong[q], table, edges, indptr, indices, depth=N)
    assert fit["weight"] > 0 and fit["mrr@10"] == 1.0 and fit["mrr@10_without"] == 0.5
    # the same when the rows' wrong preference is large (1,000): the grid reaches a lambda at
    # which the walk orders its table; a grid that stopped at 32 could not (32 log(1 + 2 / 1e-3)
    # is about 243, and MRR@10 stayed 0.5)
    far = wrong * 200
    fit = fit_walk_channel(lambda q: far[q], table, edges, indptr, indices, depth=N)
    assert fit["weight"] >= 128 and fit["mrr@10"] == 1.0
    # rows that already rank the targets first: the channel stays off (lambda 0 wins the tie)
    right = torch.zeros(N, N)
    right[3, 1] = right[4, 3] = 9.0
    assert fit_walk_channel(lambda q: right[q], table, edges, indptr, indices, depth=N)["weight"] == 0.0


def test_channel_takes_each_walk_at_the_grid_point_its_baseline_picks():
    from models.baselines import choose_on_validation, walk_families
    from models.walk_channel import WalkSearch, choose_walk_channel

    indptr, indices = out_neighbour_csr(TRAIN, N)
    edges = torch.tensor([[3, 4], [1, 3]])  # reverse edges: 1 -> 3 and 3 -> 4 are training edges
    # On A + A^T, P alone (weights (1,)): 4's only neighbour is 3 (rank 1); 3's are 1, 2, 4 at 1/3,
    # 4 filtered, so 1 ties with 2 (mid-rank 1.5): MRR@10 (1 + 2/3) / 2 = 0.8333.
    # P^2 alone (weights (0, 1)): from 4, 1 and 2 at 1/3 come before 3 (rank 3); from 3,
    # P^2[3] = [2/9, 1/9, 1/9, 5/9, 0], so 0 comes first and 1 ties with 2 (mid-rank 2.5):
    # MRR@10 (1/3 + 2/5) / 2 = 0.3667. The baseline and the channel both take weights (1,).
    build, _ = walk_families(TRAIN, N, [(1,)], [0.5], [0.0])["walk"]
    grid = [{"weights": (0.0, 1.0)}, {"weights": (1.0,)}]
    chosen, tried = choose_on_validation(build, grid, edges, indptr, indices, N)
    assert [point["val_mrr@10"] for point in tried] == pytest.approx([0.36667, 0.83333], abs=1e-5)
    assert chosen == {"weights": (1.0,)}
    embeddings = torch.zeros(N, N)
    embeddings[3, 0] = embeddings[4, 0] = 5.0  # node 0 first for both queries: both targets rank 2
    embeddings[3, 1] = 0.1  # and 1 just above 2, so with the walk's bonus both targets rank 1
    channel, report = choose_walk_channel(lambda q: embeddings[q], N, edges, indptr, indices,
                                          WalkSearch({"walk on A + A^T": (build, grid)}))
    assert report["walk"] == "walk on A + A^T" and report["settings"] == {"weights": (1.0,)}
    assert report["val_mrr@10_without"] == 0.5 and report["weight"] > 0 and report["val_mrr@10"] == 1.0
    # its table is the one-step walk's: node 4's first entry is 3
    assert channel.index[4, 0].item() == 3


def test_one_search_builds_each_walk_once_per_split():
    # the variants of one seed share a search: a second model on the same validation edges
    # reuses the walk's grid point and table; other validation edges choose and build anew
    from models.baselines import walk_families
    from models.walk_channel import WalkSearch, choose_walk_channel

    indptr, indices = out_neighbour_csr(TRAIN, N)
    family, grid = walk_families(TRAIN, N, [(1,), (0, 1)], [0.5], [0.0])["walk"]
    built = []

    def build(**settings):
        built.append(settings["weights"])
        return family(**settings)

    search = WalkSearch({"walk": (build, grid)})
    edges = torch.tensor([[3, 4], [1, 3]])
    embeddings = torch.zeros(N, N)
    embeddings[3, 0] = embeddings[4, 0] = 5.0  # as above: the one-step walk's bonus helps
    embeddings[3, 1] = 0.1
    first = choose_walk_channel(lambda q: embeddings[q], N, edges, indptr, indices, search)
    assert built == [(1.0,), (0.0, 1.0), (1.0,)]  # two grid points, then the chosen one's table
    second = choose_walk_channel(lambda q: 2 * embeddings[q], N, edges, indptr, indices, search)
    assert len(built) == 3 and first[1]["walk"] == second[1]["walk"] == "walk"
    assert second[0].index is first[0].index
    choose_walk_channel(lambda q: embeddings[q], N, edges[:, :1], indptr, indices, search)
    assert len(built) == 6
