"""How a search by words and one by meaning are fused (reciprocal rank, worker.passages)."""

from __future__ import annotations

from worker.passages import fused


def test_reciprocal_rank_fusion_favours_what_both_rankings_place_high() -> None:
    lexical = ["rent", "deposit", "pets", "smoking"]
    dense = ["pets", "rent", "guests"]
    # rent: 1/61 + 1/62; pets: 1/63 + 1/61; deposit: 1/62 alone; guests 1/63; smoking 1/64.
    assert fused([lexical, dense]) == ["rent", "pets", "deposit", "guests", "smoking"]


def test_a_passage_one_ranking_alone_finds_still_counts() -> None:
    assert fused([[], ["only the embedder saw it"]]) == ["only the embedder saw it"]
    assert fused([]) == []
