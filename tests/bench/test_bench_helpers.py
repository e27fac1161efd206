"""The benchmark's pure helpers: the memory recommendation and the alternating measurement."""

from __future__ import annotations

import pytest

from bench.__main__ import SERVERLESS_MEMORY_MB, interleaved_medians, recommend_memory_mb


@pytest.mark.parametrize(
    "peak_mb, size",
    [(100, 1024), (682, 1024), (683, 2048), (1400, 3072), (3900, 6144), (9000, 6144)],
)
def test_memory_recommendation_is_the_smallest_size_with_headroom(peak_mb, size):
    assert recommend_memory_mb(peak_mb) == size
    assert size in SERVERLESS_MEMORY_MB


def test_interleaved_medians_alternates_and_settles():
    calls: list[str] = []
    medians = interleaved_medians(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1, settle=2
    )
    assert set(medians) == {"a", "b"}
    # warm-up once each, then per round: 2 settle calls + 1 measured call, a before b
    assert calls == ["a", "b"] + (["a"] * 3 + ["b"] * 3) * 3
