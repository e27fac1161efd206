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


def test_served_path_breakdown_times_each_call_after_what_the_served_path_runs_before_it():
    from types import SimpleNamespace

    from bench.__main__ import served_path_by_cache_state

    calls: list[str] = []
    batch = object()

    def input_fn(body, content_type):
        calls.append("input_fn")
        return SimpleNamespace(batch=batch)

    def predict_fn(x, model):
        model.run(x.batch)
        calls.append("predict_fn")
        return "prediction"

    def output_fn(prediction, accept):
        calls.append("output_fn")

    inference = SimpleNamespace(input_fn=input_fn, predict_fn=predict_fn, output_fn=output_fn, JPEG="j", JSON="a")
    classifier = SimpleNamespace(run=lambda b: calls.append("model"))
    medians = served_path_by_cache_state(inference, b"jpeg", classifier, rounds=2)

    assert set(medians) == {
        *("input_fn", "predict_fn", "output_fn", "model alone"),
        *("input_fn warm", "output_fn warm", "input_fn read", "output_fn read"),
    }
    first_round = calls[:14]
    # the served sequence, then the warm pair (input_fn once untimed), then the pair after each read, then the
    # model after itself, then a served request's end so the next round's input_fn follows a model run
    assert first_round == [
        "input_fn", "model", "predict_fn", "output_fn",
        "input_fn", "input_fn", "output_fn",
        "input_fn", "output_fn",
        "model", "model",
        "model", "predict_fn", "output_fn",
    ]  # fmt: skip
    assert calls[-3:] == ["model", "predict_fn", "output_fn"]
