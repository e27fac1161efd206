"""code/inference.py: model_fn, every content type and image mode, EXIF, named errors, the real photos."""

from __future__ import annotations

import base64
import dataclasses
import inspect
import io
import json
import logging
import re
import sys
import warnings
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin

from tests.conftest import ROOT, names_of
from tests.imagegen import (
    CAT_LABELS,
    animated_gif,
    baseline_many_scans_jpeg,
    bomb_png,
    encode,
    grey_png_with_trns,
    many_scans_jpeg,
    many_scans_mpo,
    palette_png_with_long_trns,
    photo,
    photo_bytes,
    png_with_bad_exif_tags,
    png_with_colour_profiles,
    polyglot,
    preset_pixels,
    rgb_png_with_trns,
    text_bomb_png,
    truncated,
    with_exif_orientation,
)


def classify(inference, classifier, body, content_type="image/jpeg", accept="application/json"):
    data = inference.input_fn(body, content_type)
    body, content_type = inference.output_fn(inference.predict_fn(data, classifier), accept)
    assert content_type == "application/json"
    return json.loads(body)


def top1(result):
    return result["predictions"][0]["label"]


# --- model_fn ------------------------------------------------------------------------------------------
def test_model_fn_serves_the_fast_backend(classifier, model_dir):
    import onnxruntime as ort

    assert classifier.backend == f"onnxruntime-{ort.__version__}"  # the reply names the runtime and its version
    assert len(classifier.labels) == 1000 and classifier.model_name == "mobilenet_v2"
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert classifier.weights_id == meta["weights"]
    # The preset's sizes, mean, std and resampling as the build recorded them, each from its own key.
    pre = classifier.preprocessing
    recorded = {"resize": pre.resize, "crop": pre.crop, "mean": list(pre.mean), "std": list(pre.std)}
    assert {**recorded, "interpolation": pre.interpolation} == meta["preprocessing"]


def test_model_fn_torchscript_fallback(inference, classifier, model_dir, monkeypatch):
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # past pyproject's filter: what `python -m local` would print at start
        ts = inference.load_classifier(str(model_dir))
    import torch  # after the load: torch's own import is under the warnings check above too

    assert ts.backend == f"torchscript-{torch.__version__}"  # the reply names the runtime and its version
    assert [str(w.message) for w in shown if issubclass(w.category, FutureWarning)] == []  # torch.jit's deprecations
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert top1(classify(inference, ts, photo_bytes("coffee.jpg"))) == "espresso"
    # The pixels are a read-only view of Pillow's buffer, which torch would warn of (to the logs) unless copied.
    assert [str(w.message) for w in shown] == []
    # The fallback normalises inside the model as the ONNX graph does: the same probabilities, not just the same top-1.
    for name in ("chelsea.jpg", "rocket.jpg"):
        data = inference.input_fn(photo_bytes(name), "image/jpeg")
        served, fallback = (inference.predict_fn(data, model).probs for model in (classifier, ts))
        assert np.abs(served - fallback).max() < 1e-4, name


@pytest.mark.parametrize("value", ["ORT", "onnx", "torch script"])
def test_an_unknown_model_backend_is_refused(inference, model_dir, monkeypatch, value):
    monkeypatch.setenv("MODEL_BACKEND", value)
    expected = r"MODEL_BACKEND=.* is not one of auto, onnxruntime, torchscript"
    with pytest.raises(inference.ModelLoadError, match=expected):
        inference.load_classifier(str(model_dir))


def test_a_forced_onnxruntime_without_the_graph_names_the_path(inference, model_dir, tmp_path, monkeypatch):
    for name in ("metadata.json", "model.pth"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    monkeypatch.setenv("MODEL_BACKEND", "OnnxRuntime")  # case does not matter; the value must be a known one
    with pytest.raises(inference.ModelLoadError, match=str(tmp_path / "model.onnx")):
        inference.load_classifier(str(tmp_path))


def test_a_blank_model_backend_means_auto(inference, model_dir, monkeypatch):
    # A cleared variable (`MODEL_BACKEND=` in a template or shell) is the default, not a failed start.
    monkeypatch.setenv("MODEL_BACKEND", " ")
    assert inference.load_classifier(str(model_dir)).backend.startswith("onnxruntime")


@pytest.mark.parametrize("choice", ["onnxruntime", "auto"])
def test_an_onnxruntime_that_does_not_load(model_dir, tmp_path, choice):
    # Not a missing module: the package is there but its extension fails to load (a glibc too old for the
    # wheel), which Python reports as a plain ImportError. In a Python of its own, where that onnxruntime comes
    # first: taken out of sys.modules and put first on sys.path here, it would be every thread's next import of it.
    import subprocess

    (tmp_path / "onnxruntime").mkdir()
    (tmp_path / "onnxruntime" / "__init__.py").write_text(
        'raise ImportError("libonnxruntime_providers_shared.so: cannot open shared object file")\n'
    )
    script = f"""
import logging, os, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, {str(tmp_path)!r})
os.environ["MODEL_BACKEND"] = {choice!r}
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from local.runtime import load_inference_module
inference = load_inference_module(Path({str(model_dir / "code")!r}))
def torchscript_stub(weights_path, model_name, num_classes, pre):  # the real one takes seconds to trace and freeze
    return (lambda batch: np.zeros((len(batch), num_classes), np.float32)), "torchscript-stub"
inference._torchscript_backend = torchscript_stub
try:
    print(inference.load_classifier({str(model_dir)!r}).backend)
except inference.ModelLoadError as e:
    print(e)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if choice == "onnxruntime":
        assert done.stdout.startswith("onnxruntime requested but cannot import: libonnx"), done.stdout
        return
    assert done.stdout == "torchscript-stub\n"
    # The warning says why: the import's own error, which names the library that failed to load.
    assert (
        "onnxruntime unavailable (libonnxruntime_providers_shared.so: cannot open shared object file); "
        "falling back to TorchScript"
    ) in done.stderr.splitlines()


def torchscript_stub(weights_path, model_name, num_classes, pre):  # the real one takes seconds to trace and freeze
    return (lambda batch: np.zeros((len(batch), num_classes), np.float32)), "torchscript-stub"


def test_an_artifact_built_without_the_graph_serves_torchscript(inference, model_dir, tmp_path, monkeypatch):
    # `python -m model.package --no-onnx` packs no model.onnx: auto serves the weights, not a failed ONNX load.
    for name in ("metadata.json", "model.pth"):
        (tmp_path / name).symlink_to(model_dir / name)
    monkeypatch.delenv("MODEL_BACKEND", raising=False)
    monkeypatch.setattr(inference, "_torchscript_backend", torchscript_stub)
    assert inference.load_classifier(str(tmp_path)).backend == "torchscript-stub"


def test_model_fn_logs_what_serves_with_which_backend_on_how_many_threads(inference, model_dir, monkeypatch, caplog):
    monkeypatch.setattr(inference, "_threads", lambda: 3)
    # The load's time, read from the module's clock at its start and at the log line: 1.25 s is 1250 ms.
    readings = iter([100.0, 101.25])
    monkeypatch.setattr(inference, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    with caplog.at_level(logging.INFO, logger=inference.logger.name):
        classifier = inference.load_classifier(str(model_dir))
    served = [m for m in caplog.messages if m.startswith("model_fn: serving")]
    assert len(served) == 1, caplog.messages
    expected = f"model_fn: serving mobilenet_v2 ({classifier.weights_id}) with {classifier.backend} on 3 threads in "
    assert served == [f"{expected}1250 ms"]


def test_the_warm_up_runs_the_model_on_a_request_of_the_crops_size(inference, model_dir, tmp_path, monkeypatch):
    # The first request is not the slow one only if the warm-up ran what requests send: one uint8 image of the crop.
    batches = []

    def torchscript(weights_path, model_name, num_classes, pre):
        def run(batch):
            batches.append((batch.shape, batch.dtype))
            return np.zeros((len(batch), num_classes), np.float32)

        return run, "torchscript-stub"

    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.update(resize=183, crop=160), "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    monkeypatch.setattr(inference, "_torchscript_backend", torchscript)
    inference.load_classifier(artifact)
    assert batches == [((1, 160, 160, 3), np.uint8)]


def test_labels_that_do_not_match_the_graph_fail_model_fn(inference, model_dir, tmp_path):
    meta = json.loads((model_dir / "metadata.json").read_text())
    (tmp_path / "metadata.json").write_text(json.dumps({**meta, "labels": meta["labels"][:999]}))
    (tmp_path / "model.onnx").symlink_to(model_dir / "model.onnx")
    with pytest.raises(inference.ModelLoadError, match=r"gave shape \(1, 1000\), expected \(1, 999\)"):
        inference.load_classifier(str(tmp_path))


@pytest.mark.parametrize("shape", [(2, 1000), (1, 1000, 1)])
def test_logits_of_one_row_per_class_more_or_another_axis_fail_model_fn(inference, model_dir, monkeypatch, shape):
    # predict_fn serves the first row as the image's logits, one per label: a graph answering one image with two rows,
    # or with an axis more, would be served another image's row or a softmax over one value.
    def onnxruntime(onnx_path, crop):
        return (lambda batch: np.zeros(shape, np.float32)), "onnxruntime-stub"

    monkeypatch.setattr(inference, "_onnxruntime_backend", onnxruntime)
    with pytest.raises(inference.ModelLoadError, match=re.escape(f"gave shape {shape}, expected (1, 1000)")):
        inference.load_classifier(str(model_dir))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
        (b'{"model": "caf\xe9"}', "is not valid JSON: 'utf-8' codec can't decode byte 0xe9"),  # saved as Latin-1
        ('{"model": "mobilenet_v2"}', r"lacks \['labels', 'preprocessing', 'weights'\]"),
        ('{"weights": "w", "labels": [], "preprocessing": {}}', r"lacks \['model'\]"),
        ("[]", "is a JSON list, not an object"),
        ('{"model": "m", "weights": "w", "labels": [], "preprocessing": {}}', "unusable .*KeyError\\('resize'"),
        ('{"model": "m", "weights": "w", "labels": null, "preprocessing": {}}', "unusable .*TypeError"),
    ],
)
def test_model_fn_names_broken_metadata(inference, tmp_path, text, says):
    (tmp_path / "metadata.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(inference.ModelLoadError, match=f"metadata at {tmp_path / 'metadata.json'}.*{says}"):
        inference.load_classifier(str(tmp_path))


@pytest.mark.parametrize(
    ("index", "label", "refusal"),
    [  # index None: "labels" itself is the value
        (None, "tench", TypeError("labels 'tench' is not a list")),  # was split into 5 one-letter labels
        (None, {"tench": 0}, TypeError("labels {'tench': 0} is not a list")),
        (1, 7, ValueError("labels[1] 7 is not a non-blank string")),  # was served as "label": 7
        (999, None, ValueError("labels[999] None is not a non-blank string")),
        (0, "", ValueError("labels[0] '' is not a non-blank string")),
        (2, "  ", ValueError("labels[2] '  ' is not a non-blank string")),  # was served as an empty-looking label
        (3, "\t\u3000\n", ValueError("labels[3] '\\t\\u3000\\n' is not a non-blank string")),
        (1, ["goldfish"], ValueError("labels[1] ['goldfish'] is not a non-blank string")),
    ],
)
def test_labels_that_are_not_a_list_of_non_blank_strings_fail_model_fn_naming_them(
    inference, model_dir, tmp_path, index, label, refusal
):
    meta = json.loads((model_dir / "metadata.json").read_text())
    if index is None:
        meta["labels"] = label
    else:
        meta["labels"][index] = label
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "model.onnx").symlink_to(model_dir / "model.onnx")
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(str(tmp_path))
    assert str(err.value) == (
        f"model metadata at {tmp_path / 'metadata.json'} has unusable labels or preprocessing: {refusal!r}"
    )


def test_repeated_labels_are_served(inference, model_dir, tmp_path):
    # ImageNet's own class names repeat (134 and 517 are both "crane", 638 and 639 "maillot"); torchvision 0.29's
    # "crane bird" and "maillot tank suit" are its own renames, which another label list need not have.
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["labels"][134], meta["labels"][639] = "crane", "maillot"
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "model.onnx").symlink_to(model_dir / "model.onnx")
    labels = inference.load_classifier(str(tmp_path)).labels
    assert labels[134] == labels[517] == "crane" and labels[638] == labels[639] == "maillot"


def edited_artifact(model_dir, tmp_path, edit, model_file: str = "model.onnx") -> str:
    """The built artifact in tmp_path, its metadata.json's "preprocessing" object changed in place by edit."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    edit(meta["preprocessing"])
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / model_file).symlink_to(model_dir / model_file)
    return str(tmp_path)


def assert_preprocessing_refused(inference, model_dir, tmp_path, key, value, refusal: ValueError) -> None:
    """model_fn on the built artifact with metadata.json's preprocessing[key] set to value fails naming the file."""
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(edited_artifact(model_dir, tmp_path, lambda pre: pre.update({key: value})))
    assert str(err.value) == (
        f"model metadata at {tmp_path / 'metadata.json'} has unusable labels or preprocessing: {refusal!r}"
    )


@pytest.mark.parametrize("value", ["nearest", "BICUBIC", "lanczos", "", 3, None, ["bicubic"]])
def test_a_resampling_preprocess_does_not_do_fails_model_fn_naming_it(inference, model_dir, tmp_path, value):
    # Only bilinear and bicubic are compared with torchvision's pixels; another mode would serve untested pixels.
    refusal = ValueError(f"interpolation {value!r} is not one of bilinear, bicubic")
    assert_preprocessing_refused(inference, model_dir, tmp_path, "interpolation", value, refusal)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("resize", 0),
        ("resize", -256),
        ("resize", 1.9),
        ("resize", True),
        ("resize", "256"),
        ("crop", 0),
        ("crop", 224.0),
        ("crop", "224"),
    ],
)
def test_a_resize_or_crop_that_is_not_a_whole_number_above_0_fails_model_fn_naming_it(
    inference, model_dir, tmp_path, key, value
):
    # A resize of 0 loaded and then failed every request; 1.9 and true (int() made them 1) served a one-pixel image.
    refusal = ValueError(f"{key} {value!r} is not a whole number above 0")
    assert_preprocessing_refused(inference, model_dir, tmp_path, key, value, refusal)


@pytest.mark.parametrize("resize", [449, 100_000])
def test_a_resize_above_twice_the_crop_fails_model_fn_naming_it(inference, model_dir, tmp_path, resize):
    # No preset resizes to more than 1.15 times its crop; 100000 resized every image to gigabytes per request.
    refusal = ValueError(f"resize {resize} is above 2 times crop 224 (448)")
    assert_preprocessing_refused(inference, model_dir, tmp_path, "resize", resize, refusal)


def test_a_resize_of_twice_the_crop_is_served(inference, model_dir, tmp_path):
    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.update(resize=448))
    assert inference.load_classifier(artifact).preprocessing.resize == 448


@pytest.mark.parametrize(("resize", "crop"), [(1, 1), (2048, 1024)])
def test_the_smallest_and_largest_sizes_are_served(inference, model_dir, tmp_path, monkeypatch, resize, crop):
    # "Above 0" includes 1 (MobileNet V2 takes a 1x1 image), and crop 1024 (EfficientNet-B7 crops 600) resized to
    # twice that; the TorchScript stub stands for a graph of any size.
    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.update(resize=resize, crop=crop), "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    monkeypatch.setattr(inference, "_torchscript_backend", torchscript_stub)
    pre = inference.load_classifier(artifact).preprocessing
    assert (pre.resize, pre.crop) == (resize, crop)


def onnx_graph_taking(model_dir, tmp_path, height: int | str, width: int | str, crop: int) -> str:
    """The built artifact in tmp_path with metadata.json's crop and its ONNX graph's input height and width set (a
    name: a size the graph does not fix)."""
    import onnx

    graph = onnx.load(str(model_dir / "model.onnx"))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip((dims[1], dims[2]), (height, width), strict=True):
        dim.Clear()
        if isinstance(size, str):
            dim.dim_param = size
        else:
            dim.dim_value = size
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["preprocessing"]["crop"] = crop
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "model.onnx").write_bytes(graph.SerializeToString())
    return str(tmp_path)


@pytest.mark.parametrize(("height", "width", "crop"), [("height", "width", 160), (224, "width", 224)])
def test_an_onnx_graph_that_does_not_fix_its_size_serves_metadata_crop(
    inference, model_dir, tmp_path, height, width, crop
):
    # Only a size the graph fixes can contradict metadata.json; a graph exported with dynamic height or width serves.
    classifier = inference.load_classifier(onnx_graph_taking(model_dir, tmp_path, height, width, crop))
    assert classifier.backend.startswith("onnxruntime") and classifier.preprocessing.crop == crop


@pytest.mark.parametrize(
    ("height", "width", "takes"),
    [(224, 225, "224x225"), (225, "width", "225x'width'"), ("height", 160, "'height'x160")],
)
def test_an_onnx_graph_fixing_a_size_other_than_the_crop_fails_model_fn_naming_it(
    inference, model_dir, tmp_path, height, width, takes
):
    # The crop is square: a graph fixed at 224x225, or fixing one axis at another size than the crop, failed the
    # warm-up with ONNX Runtime's own error.
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(onnx_graph_taking(model_dir, tmp_path, height, width, 224))
    assert str(err.value) == (
        f"model metadata at {tmp_path / 'metadata.json'} has crop 224, but the ONNX graph at "
        f"{tmp_path / 'model.onnx'} takes {takes} pixels"
    )


@pytest.mark.parametrize("crop", [1025, 100_000])
def test_a_crop_above_1024_fails_model_fn_naming_it(inference, model_dir, tmp_path, monkeypatch, crop):
    # With no ONNX graph of a fixed size to refuse it (the TorchScript fallback traces at any size, as does a graph
    # exported with dynamic sizes), 100000 failed the warm-up allocating 30 GB, naming neither metadata.json nor crop.
    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.update(crop=crop), "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    monkeypatch.setattr(inference, "_torchscript_backend", torchscript_stub)
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(artifact)
    refusal = ValueError(f"crop {crop} is above 1024, the largest crop served")
    assert str(err.value) == (
        f"model metadata at {tmp_path / 'metadata.json'} has unusable labels or preprocessing: {refusal!r}"
    )


def identity_graph(tmp_path, elem_type: int, shape: list) -> str:
    """An ONNX graph that returns its one input, of that element type and shape (a name: a size it does not fix)."""
    from onnx import helper, save

    pixels = helper.make_tensor_value_info("pixels", elem_type, shape)
    same = helper.make_tensor_value_info("same", elem_type, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["pixels"], ["same"])], "identity", [pixels], [same])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "g.onnx")
    return str(tmp_path / "g.onnx")


@pytest.mark.parametrize(
    ("elem_type", "shape", "takes"),
    [
        (1, [1, 3, 224, 224], "tensor(float) of shape [1, 3, 224, 224]"),  # torchvision's usual export
        (1, ["batch", 224, 224, 3], "tensor(float) of shape ['batch', 224, 224, 3]"),  # normalised outside it
        (2, ["batch", 3, 224, 224], "tensor(uint8) of shape ['batch', 3, 224, 224]"),  # was "takes 3x224 pixels"
        (2, [224, 224, 3], "tensor(uint8) of shape [224, 224, 3]"),  # was "not enough values to unpack"
        (2, [1, 224, 224, 3, 1], "tensor(uint8) of shape [1, 224, 224, 3, 1]"),  # was ONNX Runtime's own error
        (2, [8, 224, 224, 3], "tensor(uint8) of shape [8, 224, 224, 3]"),
        (2, ["batch", 224, 224, 1], "tensor(uint8) of shape ['batch', 224, 224, 1]"),
    ],
    ids=["float-nchw", "float-nhwc", "uint8-nchw", "no-batch", "an-axis-more", "batch-of-8", "grey"],
)
def test_an_onnx_graph_not_taking_uint8_nhwc_pixels_fails_model_fn_naming_it(
    inference, tmp_path, elem_type, shape, takes
):
    onnx_path = identity_graph(tmp_path, elem_type, shape)
    with pytest.raises(inference.ModelLoadError) as err:
        inference._onnxruntime_backend(onnx_path, 224)
    assert str(err.value) == (
        f"the ONNX graph at {onnx_path} takes {takes}, not uint8 pixels of shape [batch, height, width, 3] as "
        "model.package exports it"
    )


@pytest.mark.parametrize("shape", [[1, 224, 224, 3], ["batch", "height", "width", "channels"]])
def test_an_onnx_graph_taking_one_or_any_batch_and_channels_is_served(inference, tmp_path, shape):
    run, _ = inference._onnxruntime_backend(identity_graph(tmp_path, 2, shape), 224)
    pixels = np.arange(224 * 224 * 3, dtype=np.uint8).reshape(1, 224, 224, 3)
    assert np.array_equal(run(pixels), pixels)


@pytest.mark.parametrize("crop", [225, 223])
def test_a_crop_the_onnx_graph_does_not_take_fails_model_fn_naming_it(inference, model_dir, tmp_path, crop):
    # It failed the warm-up with ONNX Runtime's own InvalidArgument, naming neither metadata.json nor the crop.
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(edited_artifact(model_dir, tmp_path, lambda pre: pre.update(crop=crop)))
    assert str(err.value) == (
        f"model metadata at {tmp_path / 'metadata.json'} has crop {crop}, but the ONNX graph at "
        f"{tmp_path / 'model.onnx'} takes 224x224 pixels"
    )


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("mean", [0.5, 0.5], "3 numbers"),
        ("mean", [0.5, 0.5, 0.5, 0.5], "3 numbers"),
        ("mean", ["0.5", 0.5, 0.5], "3 numbers"),
        ("mean", [0.5, None, 0.5], "3 numbers"),
        ("mean", [0.5, True, 0.5], "3 numbers"),
        ("mean", [0.5, 0.5, 0.5, None], "3 numbers"),  # three numbers, and one more
        ("mean", [0.5, float("inf"), 0.5], "3 numbers"),
        ("std", [0.2, float("nan"), 0.2], "3 numbers above 0"),  # json reads NaN
        ("std", [0.2, 0.0, 0.2], "3 numbers above 0"),
        ("std", [0.2, -0.1, 0.2], "3 numbers above 0"),
        ("std", [], "3 numbers above 0"),
    ],
)
def test_a_mean_or_std_that_is_not_one_number_per_channel_fails_model_fn_naming_it(
    inference, model_dir, tmp_path, key, value, rule
):
    # The TorchScript fallback normalises with them: two numbers failed inside torch, a zero std divided by zero.
    refusal = ValueError(f"{key} {value!r} is not {rule}, one per RGB channel")
    assert_preprocessing_refused(inference, model_dir, tmp_path, key, value, refusal)


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("mean", [0.5, 10**400, 0.5], "[0.5, 100000000000000000...0000000000000000000, 0.5]"),  # json reads it as int
        ("std", [0.2] * 100_000, "[0.2, 0.2, 0.2, 0.2, 0.2, 0.2, ...]"),
    ],
)
def test_a_long_mean_or_std_is_refused_naming_its_first_values_only(inference, model_dir, tmp_path, key, value, shown):
    # The whole list went into the refusal, which model_fn logs as one line.
    rule = "3 numbers above 0" if key == "std" else "3 numbers"
    refusal = ValueError(f"{key} {shown} is not {rule}, one per RGB channel")
    assert_preprocessing_refused(inference, model_dir, tmp_path, key, value, refusal)


def test_a_mean_of_0_and_whole_numbers_are_one_number_per_channel(inference, model_dir, tmp_path):
    # Only std must be above 0; a hand-edited metadata.json may write 0 and 1 without a decimal point.
    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.update(mean=[0, 0.0, 0.5], std=[1, 1, 2]))
    pre = inference.load_classifier(artifact).preprocessing
    assert (pre.mean, pre.std) == ((0, 0.0, 0.5), (1, 1, 2))


@pytest.mark.parametrize(("key", "value"), [("std", [1e-40, 0.224, 0.225]), ("mean", [0.485, 1e300, 0.406])])
def test_a_mean_or_std_float32_cannot_hold_fails_model_fn_naming_the_file(
    inference, model_dir, tmp_path, monkeypatch, key, value
):
    # Finite and above 0 as Python reads them, the TorchScript fallback's float32 normalisation made every
    # probability NaN, served as `"prob": NaN` (not JSON) with a 200.
    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.update({key: value}), "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(artifact)
    assert str(err.value) == (
        f"model in {tmp_path} gave non-finite logits for a black image: its weights, or the mean and std in "
        f"{tmp_path / 'metadata.json'}, are not finite in float32"
    )


def test_weights_that_give_one_non_finite_logit_fail_model_fn(inference, model_dir, monkeypatch):
    # One NaN class is as unservable as all of them: its "prob" would be NaN, which is not JSON.
    def onnxruntime(onnx_path, crop):
        return (lambda batch: np.array([[np.nan] + [0.0] * 999], np.float32)), "onnxruntime-stub"

    monkeypatch.setattr(inference, "_onnxruntime_backend", onnxruntime)
    with pytest.raises(inference.ModelLoadError, match="gave non-finite logits for a black image"):
        inference.load_classifier(str(model_dir))


def test_an_artifact_whose_metadata_names_no_resampling_resizes_bilinear(inference, model_dir, tmp_path):
    # Builds before "interpolation" was read wrote it as "bilinear"; one without the key was served bilinear too.
    artifact = edited_artifact(model_dir, tmp_path, lambda pre: pre.pop("interpolation"))
    pre = inference.load_classifier(artifact).preprocessing
    assert pre.interpolation == "bilinear"
    img = photo("chelsea.jpg")
    np.testing.assert_array_equal(inference.preprocess(img, pre), _torchvision_crop(img, pre))


def test_onnxruntime_telemetry_is_off_in_the_served_process(model_dir, tmp_path):
    # ONNX Runtime's defaults write a device id and an event database under $HOME (and try to send them).
    import subprocess
    import sys

    script = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1] + '/code'); import inference\n"
        "m = inference.model_fn(sys.argv[1]); m.run(np.zeros((1, 224, 224, 3), np.uint8)); print(m.backend)"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(model_dir)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0 and out.stdout.startswith("onnxruntime"), out.stderr[-2000:]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == []


def _tree(root):
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("backend", ["auto", pytest.param("torchscript", marks=pytest.mark.slow)])
def test_serving_writes_nothing_into_the_model_directory(model_dir, tmp_path, backend):
    """SageMaker unpacks the artifact into /opt/ml/model and serves it from there, a directory to treat as read-only
    (AWS: Custom Inference Code with Hosting Services, "How SageMaker AI Loads Your Model Artifacts"). The import,
    model_fn (either backend) and a request, in a fresh process with the DLC's PYTHONDONTWRITEBYTECODE=1, leave every
    file there as it was and add none: no byte code, optimised graph or cache beside the model."""
    import shutil
    import subprocess

    served = shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("__pycache__"))
    before = _tree(served)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1] + '/code'); import inference\n"
        "m = inference.model_fn(sys.argv[1])\n"
        "data = inference.input_fn(open(sys.argv[2], 'rb').read(), 'image/jpeg')\n"
        "print(m.backend, inference.output_fn(inference.predict_fn(data, m), 'application/json')[0][:40])"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "MODEL_BACKEND": backend}
    jpeg = tmp_path / "coffee.jpg"
    jpeg.write_bytes(photo_bytes("coffee.jpg"))
    out = subprocess.run(
        [sys.executable, "-c", script, str(served), str(jpeg)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("onnxruntime" if backend == "auto" else "torchscript"), out.stdout
    assert _tree(served) == before


def test_an_operator_may_turn_onnxruntime_telemetry_on(inference, tmp_path, monkeypatch):
    # README: ORT_DISABLE_TELEMETRY=1 is set before the import, unless the environment sets it.
    import os

    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")
    inference._onnxruntime_backend(identity_graph(tmp_path, 2, [1, 224, 224, 3]), 224)
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "0"


@pytest.mark.parametrize("kind", ["absent", "a file"])
def test_model_fn_names_the_missing_directory(inference, tmp_path, kind):
    # A file in its place (the model.tar.gz itself, not where it was extracted) is no model directory either: named
    # as the directory, not as a metadata.json under a file.
    if kind == "a file":
        (tmp_path / "nope").write_bytes(b"")
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(str(tmp_path / "nope"))
    assert str(err.value) == f"model directory {tmp_path / 'nope'} does not exist"


@pytest.mark.parametrize("a_directory", [False, True])
def test_model_fn_names_the_missing_metadata(inference, tmp_path, a_directory):
    if a_directory:
        (tmp_path / "metadata.json").mkdir()
    why = "Is a directory" if a_directory else "No such file or directory"
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(str(tmp_path))
    assert str(err.value) == f"cannot read model metadata at {tmp_path / 'metadata.json'}: {why}"


@pytest.mark.parametrize("a_directory", [False, True])
def test_model_fn_names_the_missing_weights(inference, model_dir, tmp_path, monkeypatch, a_directory):
    (tmp_path / "metadata.json").write_bytes((model_dir / "metadata.json").read_bytes())
    if a_directory:  # not a file torch.load could read: missing too, not an IsADirectoryError of torch's
        (tmp_path / "model.pth").mkdir()
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with pytest.raises(
        inference.ModelLoadError, match=f"^model weights not found at {re.escape(str(tmp_path))}/model.pth$"
    ):
        inference.load_classifier(str(tmp_path))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("truncated", "RuntimeError: PytorchStreamReader failed reading zip archive"),
        ("garbage", "it is not a torch.save() file"),
        ("bytes", "it is not a torch.save() file"),
    ],
)
def test_model_fn_names_weights_it_cannot_read(inference, model_dir, tmp_path, monkeypatch, damage, says):
    # torch.load's own errors name no file, and for garbage suggest weights_only=False, i.e. running its pickle:
    # advice the message must not pass on.
    (tmp_path / "metadata.json").write_bytes((model_dir / "metadata.json").read_bytes())
    weights = (model_dir / "model.pth").read_bytes()
    damaged = {"truncated": weights[:100_000], "garbage": b"garbage\n", "bytes": bytes(range(256)) * 4}[damage]
    (tmp_path / "model.pth").write_bytes(damaged)
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_classifier(str(tmp_path))
    assert str(err.value).startswith(f"model weights at {tmp_path / 'model.pth'} are not a readable state_dict: {says}")
    assert "weights_only" not in str(err.value)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            RuntimeError("failed reading zip archive. More advice.\nSecond line"),
            "RuntimeError: failed reading zip archive",
        ),
        (RuntimeError("x" * 300 + ". And more."), "RuntimeError: " + "x" * 200),
        (RuntimeError(), "RuntimeError: "),  # no text: its kind alone, not an IndexError of its own
    ],
)
def test_a_weights_error_is_told_by_its_kind_and_at_most_200_characters_of_its_first_sentence(inference, error, says):
    assert inference.load_failure(error) == says


def test_model_fn_refuses_weights_that_do_not_fit(inference, model_dir, tmp_path, monkeypatch):
    import torch
    import torchvision

    (tmp_path / "metadata.json").write_bytes((model_dir / "metadata.json").read_bytes())
    torch.save(torchvision.models.mobilenet_v2(num_classes=3).state_dict(), tmp_path / "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with pytest.raises(inference.ModelLoadError, match=r"do not fit mobilenet_v2"):
        inference.load_classifier(str(tmp_path))


def test_the_torchscript_fallback_builds_the_architecture_metadata_names(inference, model_dir, tmp_path, monkeypatch):
    # metadata.json's "model" (model.package's MODEL_NAME) picks the network the fallback traces, as it picks the
    # ONNX export's: weights of another torchvision classifier serve without editing inference.py.
    import torch
    import torchvision

    meta = json.loads((model_dir / "metadata.json").read_text())
    (tmp_path / "metadata.json").write_text(json.dumps({**meta, "model": "resnet18", "labels": ["a", "b", "c"]}))
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    classifier = inference.load_classifier(str(tmp_path))
    assert classifier.backend.startswith("torchscript") and classifier.model_name == "resnet18"
    # MobileNet V2's weights under a metadata.json that says resnet18: the message names the architecture tried.
    (tmp_path / "metadata.json").write_text(json.dumps({**meta, "model": "resnet18"}))
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "model.pth")
    with pytest.raises(
        inference.ModelLoadError, match=r"do not fit resnet18: Error\(s\) in loading state_dict for ResNet"
    ):
        inference.load_classifier(str(tmp_path))


def test_model_fn_names_an_architecture_torchvision_cannot_build(inference, model_dir, tmp_path, monkeypatch):
    (tmp_path / "metadata.json").write_text(
        json.dumps({**json.loads((model_dir / "metadata.json").read_text()), "model": "mobilenet_v9"})
    )
    (tmp_path / "model.pth").write_bytes((model_dir / "model.pth").read_bytes())
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    path = tmp_path / "model.pth"
    with pytest.raises(inference.ModelLoadError, match=f"weights at {path} are for 'mobilenet_v9', which torchvision"):
        inference.load_classifier(str(tmp_path))


@pytest.mark.parametrize(
    ("backend", "key", "value"),
    [
        ("auto", "model", 7),
        ("torchscript", "model", None),
        # Each reply names the weights too: 7 or "" was served as the reply's weights, as the model's name was.
        ("auto", "model", ""),
        ("auto", "weights", 7),
        ("auto", "weights", ""),
    ],
)
def test_a_model_name_that_is_not_text_fails_model_fn_naming_the_metadata(
    inference, model_dir, tmp_path, monkeypatch, backend, key, value
):
    meta = json.loads((model_dir / "metadata.json").read_text())
    (tmp_path / "metadata.json").write_text(json.dumps({**meta, key: value}))
    (tmp_path / "model.onnx").symlink_to(model_dir / "model.onnx")
    (tmp_path / "model.pth").symlink_to(model_dir / "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", backend)
    said = f"metadata at {tmp_path / 'metadata.json'}: {key} is {value!r}, not a non-empty string"
    with pytest.raises(inference.ModelLoadError, match=re.escape(said)):
        inference.load_classifier(str(tmp_path))


def test_the_torchscript_fallback_runs_torch_on_the_model_threads(inference, model_dir, tmp_path, monkeypatch, request):
    # torch sizes its pool from the host's cores, not the CPU quota: a container allowed 2 of 8 CPUs ran 8 threads
    # that the kernel throttled in the middle of a run. The thread count is set before anything else is built.
    import torch

    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    wanted = 1 if threads != 1 else 2
    monkeypatch.setattr(inference, "_threads", lambda: wanted)
    (tmp_path / "metadata.json").write_text(
        json.dumps({**json.loads((model_dir / "metadata.json").read_text()), "model": "mobilenet_v9"})
    )
    (tmp_path / "model.pth").symlink_to(model_dir / "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with pytest.raises(inference.ModelLoadError, match="which torchvision cannot build"):
        inference.load_classifier(str(tmp_path))
    assert torch.get_num_threads() == wanted


@pytest.mark.parametrize("saved", ["list", "tensor"])
def test_model_fn_names_weights_that_are_not_a_state_dict(inference, model_dir, tmp_path, monkeypatch, saved):
    # torch.load(weights_only=True) reads a saved list or tensor; load_state_dict's TypeError named no file.
    import torch

    (tmp_path / "metadata.json").write_bytes((model_dir / "metadata.json").read_bytes())
    torch.save([1, 2] if saved == "list" else torch.zeros(3), tmp_path / "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    with pytest.raises(inference.ModelLoadError, match=f"weights at {tmp_path / 'model.pth'} do not fit mobilenet_v2"):
        inference.load_classifier(str(tmp_path))


def test_weights_saved_on_a_gpu_are_served_on_the_cpu(inference, model_dir, tmp_path, monkeypatch):
    """A model.pth that torch.save wrote on a GPU machine has every tensor tagged cuda:0, where torch.load puts it
    back: without CUDA (Serverless Inference has none) model_fn failed. The artifact's CPU save, its tags rewritten
    as torch.save on a GPU machine writes them."""
    from tests.conftest import as_saved_on_a_gpu

    (tmp_path / "metadata.json").write_bytes((model_dir / "metadata.json").read_bytes())
    as_saved_on_a_gpu(model_dir / "model.pth", tmp_path / "model.pth")
    monkeypatch.setenv("MODEL_BACKEND", "torchscript")
    assert inference.load_classifier(str(tmp_path)).backend.startswith("torchscript")


# --- the real photos -----------------------------------------------------------------------------------
def test_cat_photo_is_a_cat(inference, classifier):
    result = classify(inference, classifier, photo_bytes("chelsea.jpg"))
    assert top1(result) in CAT_LABELS
    assert len(result["predictions"]) == 5
    probs = [p["prob"] for p in result["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_espresso_photo_is_espresso(inference, classifier):
    result = classify(inference, classifier, photo_bytes("coffee.jpg"))
    assert top1(result) == "espresso" and result["predictions"][0]["prob"] > 0.9
    assert result["model"] == "mobilenet_v2" and result["backend"] == classifier.backend
    assert result["weights"] == classifier.weights_id


def test_reply_carries_the_probabilities_to_a_millionth(inference, classifier):
    probs = inference.predict_fn(inference.input_fn(photo_bytes("chelsea.jpg"), "image/jpeg"), classifier).probs
    result = classify(inference, classifier, photo_bytes("chelsea.jpg"), accept="application/json;top_k=20")
    for p in result["predictions"]:
        assert abs(p["prob"] - probs[classifier.labels.index(p["label"])]) <= 5e-7, p


@pytest.mark.parametrize("name", ["probe", "chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"])
def test_the_deploys_smoke_check_takes_the_models_widest_reply(inference, classifier, name):
    """`pulumi up` fails unless the endpoint's reply to its probe is a ranked softmax top-k (parse_topk_reply): the
    real model's, at the widest top_k the proxy asks for, passes that check on the probe and on every photo."""
    from components.dynamic.smoke_check import PROBE_JPEG, parse_topk_reply
    from handlers.proxy_core import MAX_TOP_K

    body = PROBE_JPEG if name == "probe" else photo_bytes(name)
    data = inference.input_fn(body, "image/jpeg")
    reply, _ = inference.output_fn(inference.predict_fn(data, classifier), f"application/json;top_k={MAX_TOP_K}")
    assert len(parse_topk_reply(reply)) == MAX_TOP_K


def test_softmax_of_large_logits_is_finite(inference):
    # exp(100) overflows float32: the logits are shifted by their maximum first, whatever range a graph gives.
    probs = inference.softmax(np.array([[100.0, 0.0, -100.0]], dtype=np.float32))
    assert np.isfinite(probs).all() and np.allclose(probs, [[1.0, 0.0, 0.0]])


# --- content types --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("JPEG", "application/x-image"),
        ("PNG", "application/x-image"),
        ("JPEG", "Image/JPEG; charset=binary"),
    ],
)
def test_raw_image_content_types(inference, classifier, fmt, content_type):
    body = encode(photo("chelsea.jpg"), fmt, **({"quality": 95} if fmt != "PNG" else {}))
    assert top1(classify(inference, classifier, body, content_type)) in CAT_LABELS


@pytest.mark.parametrize("as_str", [True, False])
@pytest.mark.parametrize("data_url", [True, False])
def test_json_base64_and_data_url(inference, classifier, as_str, data_url):
    b64 = base64.b64encode(photo_bytes("coffee.jpg")).decode()
    image = f"data:image/jpeg;base64,{b64}" if data_url else b64
    body = json.dumps({"image": image, "top_k": 3})
    result = classify(
        inference,
        classifier,
        body if as_str else body.encode(),
        "application/json; charset=utf-8",
        accept="application/json;top_k=7",  # the request's own top_k wins over the Accept parameter
    )
    assert top1(result) == "espresso" and len(result["predictions"]) == 3


def test_top_k_from_accept_parameter_and_default(inference, classifier):
    body = photo_bytes("coffee.jpg")
    assert len(classify(inference, classifier, body, accept="application/json;top_k=20")["predictions"]) == 20
    assert len(classify(inference, classifier, body, accept="*/*")["predictions"]) == 5
    assert len(classify(inference, classifier, body, accept=None)["predictions"]) == 5
    assert len(classify(inference, classifier, body, accept="text/html, application/json;top_k=2")["predictions"]) == 2
    # A top_k on any acceptable range counts, not only on the first one.
    assert len(classify(inference, classifier, body, accept="*/*, application/json;top_k=2")["predictions"]) == 2
    assert len(classify(inference, classifier, body, accept="application/json;q=0.5;top_k=3")["predictions"]) == 3


@pytest.mark.parametrize(
    ("accept", "count"),
    [
        ("application/json;TOP_K=3", 3),  # parameter names are case-insensitive (RFC 9110)
        ('application/json;top_k="3"', 3),  # ... and values may be quoted strings
        ("application/*", 5),
        ("", 5),  # an empty Accept header asks for nothing in particular
        ("application/json;q=abc", 5),  # a garbled q is ignored, not taken as a refusal
        ("application/json;q=-1", 5),  # so is one below 0 (a q is 0 to 1): only 0 refuses
        ("application/json;q=0.001;top_k=4", 4),  # the least preference that is not a refusal
        ("*/*;q=0;top_k=3, application/json", 5),  # a top_k on a refused range does not count
        ("application/json;top_k=0000003", 3),  # leading zeros are the same number, however many
        ("application/json ; top_k = 3", 3),  # whitespace around a parameter's name and value is not part of them
        ("application/json;top_k", 5),  # a parameter without '=' has no value: ignored, not an empty top_k
        ("application/json;charset=utf-8;q=0.9;top_k=4", 4),  # every parameter is read, however many
    ],
)
def test_accept_forms(inference, classifier, accept, count):
    prediction = inference.predict_fn(inference.input_fn(photo_bytes("coffee.jpg"), "image/jpeg"), classifier)
    body, content_type = inference.output_fn(prediction, accept)
    assert content_type == "application/json" and len(json.loads(body)["predictions"]) == count


@pytest.mark.parametrize("image", ["mime", "data_upper", "scheme_upper", "data_webp", "bom"])
def test_json_that_the_proxy_accepts_the_endpoint_accepts_too(inference, classifier, image):
    raw = photo_bytes("coffee.jpg")
    if image == "mime":  # 76-column lines, as base64.encodebytes and the `base64` CLI write them
        body = json.dumps({"image": base64.encodebytes(raw).decode()})
    elif image == "data_upper":
        body = json.dumps({"image": "data:image/jpeg;BASE64," + base64.b64encode(raw).decode()})
    elif image == "scheme_upper":  # URL schemes and media types are case-insensitive
        body = json.dumps({"image": "DATA:IMAGE/JPEG;BASE64," + base64.b64encode(raw).decode()})
    elif image == "data_webp":
        webp = encode(photo("coffee.jpg"), "WEBP", quality=95)
        body = json.dumps({"image": "data:image/webp;base64," + base64.b64encode(webp).decode()})
    else:  # a UTF-8 byte-order mark, as the toolkit hands the decoded body over
        body = "\ufeff" + json.dumps({"image": base64.b64encode(raw).decode()})
    assert top1(classify(inference, classifier, body, "application/json")) == "espresso"


# --- image modes and orientation -------------------------------------------------------------------------
def _mode(img: Image.Image, mode: str) -> Image.Image:
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    if mode == "I;16":
        return Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    return img.convert(mode)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGB", "PNG"),
        ("RGBA", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("L", "PNG"),
        ("I;16", "PNG"),
        ("1", "PNG"),
        ("CMYK", "JPEG"),
        ("L", "JPEG"),
        ("RGBA", "WEBP"),
    ],
)
def test_every_mode_becomes_rgb(inference, classifier, mode, fmt):
    img = _mode(photo("chelsea.jpg"), mode)
    body = encode(img, fmt)
    with Image.open(__import__("io").BytesIO(body)) as reread:
        # Pillow reads 16-bit PNGs back as "I" or "I;16", and WebP as RGB(A).
        assert reread.mode == mode or (mode, reread.mode) in {("I;16", "I"), ("RGBA", "RGB")}
    decoded = inference.decode_image(body)
    assert decoded.mode == "RGB" and decoded.size == img.size
    result = classify(inference, classifier, body, f"image/{fmt.lower()}")
    if mode in ("RGB", "RGBA", "P", "CMYK"):
        assert top1(result) in CAT_LABELS


def test_sixteen_bit_grey_keeps_its_range(inference):
    img = Image.fromarray(np.array([[65535, 128 * 257, 0]], dtype=np.uint16))
    decoded = inference.decode_image(encode(img, "PNG"))
    assert [decoded.getpixel((x, 0)) for x in range(3)] == [(255, 255, 255), (128, 128, 128), (0, 0, 0)]
    # Older Pillows read a 16-bit PNG as mode "I" (see test_every_mode_becomes_rgb): the same levels, not clipped.
    as_i = inference._to_rgb(img.convert("I"))
    assert [as_i.getpixel((x, 0)) for x in range(3)] == [(255, 255, 255), (128, 128, 128), (0, 0, 0)]


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_sixteen_bit_and_float_grey_are_converted_without_fromarrays_deprecated_mode(inference, monkeypatch, mode):
    """Pillow 11.3, requirements-dev's floor, deprecates Image.fromarray's mode argument (a DeprecationWarning, an
    error under -W error): the grey levels are made from a 2-D uint8 array, which every Pillow reads as "L". The
    installed Pillow may no longer warn, so fromarray warns here as 11.3's does."""
    fromarray = Image.fromarray

    def as_pillow_11_3(obj, mode=None):
        if mode is not None:
            warnings.warn("'mode' parameter is deprecated (Pillow 11.3)", DeprecationWarning, stacklevel=2)
        return fromarray(obj, mode)

    monkeypatch.setattr(inference, "Image", names_of(Image, fromarray=as_pillow_11_3))  # the serving code's own
    img = fromarray(np.array([[65535, 128 * 257, 0]], dtype=np.uint16))
    img = img if mode == "I;16" else img.convert("I") if mode == "I" else img.convert("F").point(lambda v: v / 257)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        rgb = inference._to_rgb(img)
    assert img.mode == mode and [rgb.getpixel((x, 0)) for x in range(3)] == [(255,) * 3, (128,) * 3, (0,) * 3]


def test_float_grey_outside_0_to_255_is_clipped_not_wrapped(inference):
    """An "F" image's levels below 0 are black and above 255 white (a cast alone wraps 300 to 44 and -5 to 251)."""
    rgb = inference._to_rgb(Image.fromarray(np.array([[-5.0, 300.0, 128.0]], dtype=np.float32)))
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [(0,) * 3, (255,) * 3, (128,) * 3]


def test_sixteen_bit_grey_colour_key_is_white(inference):
    # A tRNS chunk on a 16-bit grey PNG names one 16-bit level as transparent, as it does for 8-bit grey.
    img = Image.fromarray(np.array([[1000, 2000]], dtype=np.uint16))
    body = encode(img, "PNG", transparency=1000)
    assert Image.open(io.BytesIO(body)).info["transparency"] == 1000
    decoded = inference.decode_image(body)
    assert [decoded.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (7, 7, 7)]


def test_sixteen_bit_grey_of_a_million_columns_is_scaled_in_small_blocks(inference):
    # A 16-bit grey PNG of 1,000,000x16 is 31 KB. Blocks of a fixed row count made it one 16,000,000-pixel int64
    # block (three 128 MB temporaries; 1,000,000x50 added 1.2 GB to a worker); blocks bounded in pixels stay at
    # 32 MB each. tracemalloc sees numpy's buffers (not Pillow's).
    import tracemalloc

    pixels = np.zeros((16, 1_000_000), dtype=np.uint16)
    pixels[2:14, 100_000:900_000] = 40000
    body = encode(Image.fromarray(pixels), "PNG")
    del pixels
    tracemalloc.start()
    try:
        decoded = inference.decode_image(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.getpixel((500_000, 8)) == (155, 155, 155) and decoded.getpixel((0, 0)) == (0, 0, 0)
    assert peak < 160 * 2**20, f"{peak / 2**20:.0f} MB of numpy temporaries"


def _transparent(mode: str) -> tuple[Image.Image, dict]:
    """A 4x4 image whose pixels are all fully transparent black, in `mode`, and the PNG save options for it."""
    if mode == "P":
        img = Image.new("P", (4, 4), 0)
        img.putpalette([0, 0, 0, 255, 0, 0])
        return img, {"transparency": 0}
    if mode in ("RGB", "L"):  # a tRNS colour key: no alpha channel, one colour is transparent
        return Image.new(mode, (4, 4)), {"transparency": (0, 0, 0) if mode == "RGB" else 0}
    return Image.new(mode, (4, 4)), {}


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB", "L"])
def test_transparent_pixels_become_white(inference, mode):
    img, params = _transparent(mode)
    body = encode(img, "PNG", **params)
    assert Image.open(io.BytesIO(body)).mode == mode
    assert inference.decode_image(body).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("depth", "key", "expected"),
    [
        # Pillow widens 2- and 4-bit grey to 8 bits (2-bit 1 -> 85, 4-bit 5 -> 85) but kept the tRNS level as
        # written: the transparent pixels stayed grey. oxipng picks such mid-grey keys for low-depth graphics.
        (2, 1, [255, 0, 255, 170]),
        (2, 2, [255, 0, 85, 255]),
        (4, 5, [255, 0, 255, 170]),
        (2, 3, [255, 0, 85, 170]),
        (1, 0, [255, 255, 255, 255]),
        (8, 85, [255, 0, 255, 170]),
        # A level the depth cannot hold matches no pixel (libpng ignores it); Pillow matched it modulo 256, or
        # against the widened levels: a 2-bit key of 170 whitened the 2s, an 8-bit 426 (170 + 256) the 170s.
        (2, 170, [255, 0, 85, 170]),
        (8, 426, [255, 0, 85, 170]),
    ],
)
def test_low_depth_grey_colour_key_is_white(inference, depth, key, expected):
    samples = {1: [1, 0, 1, 1], 2: [3, 0, 1, 2], 4: [15, 0, 5, 10], 8: [255, 0, 85, 170]}[depth]
    decoded = inference.decode_image(grey_png_with_trns(depth, samples, key))
    assert [decoded.getpixel((x, 0))[0] for x in range(4)] == expected


@pytest.mark.parametrize(
    ("depth", "pixels", "key", "expected"),
    [
        # 16 bits: Pillow decodes each sample to its high byte but matched the key's low bytes, so the key colour
        # (0x12, 0x56, 0x9A) stayed and (0x34, 0x78, 0xBC), another colour, turned white.
        (
            16,
            [(0x1234, 0x5678, 0x9ABC), (0x3400, 0x7800, 0xBC00), (0, 0, 0)],
            (0x1234, 0x5678, 0x9ABC),
            [(255, 255, 255), (0x34, 0x78, 0xBC), (0, 0, 0)],
        ),
        (16, [(65535, 0, 0), (0, 0, 0)], (0, 0, 0), [(255, 0, 0), (255, 255, 255)]),
        (8, [(60, 0, 120), (1, 2, 3)], (60, 0, 120), [(255, 255, 255), (1, 2, 3)]),
    ],
)
def test_rgb_colour_key_is_white_at_any_depth(inference, depth, pixels, key, expected):
    decoded = inference.decode_image(rgb_png_with_trns(depth, pixels, key))
    assert [decoded.getpixel((x, 0)) for x in range(len(pixels))] == expected


def _random_key_image(mode: str) -> tuple[Image.Image, dict]:
    """A 100x80 image in `mode` of random pixels, a fifth of which are its transparent colour (or palette entry)."""
    rng = np.random.default_rng(2)
    if mode == "RGB":
        img = Image.fromarray(rng.integers(0, 4, (80, 100, 3), dtype=np.uint8) * 60, "RGB")
        return img, {"transparency": (60, 0, 120)}
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 5, (80, 100), dtype=np.uint8), "P")
        img.putpalette([0, 0, 0, 200, 30, 30, 30, 200, 30, 30, 30, 200, 90, 90, 90])
        return img, {"transparency": bytes([255, 0, 128, 255, 10])}
    img = Image.fromarray(rng.integers(0, 5, (80, 100), dtype=np.uint8) * 50, "L")
    return img, {"transparency": 100}


@pytest.mark.parametrize("mode", ["RGB", "P", "L"])
def test_colour_key_and_palette_transparency_composite_without_a_full_size_rgba_copy(inference, monkeypatch, mode):
    # A 157 KB 7071x7071 RGB PNG with a tRNS colour key is 200 MB decoded: its full-size RGBA copy added another
    # 200 MB beside the white result. Composited in row blocks (made small here), the pixels are the same.
    img, params = _random_key_image(mode)
    body = encode(img, "PNG", **params)
    with Image.open(io.BytesIO(body)) as reread:
        reread.load()
        assert reread.mode == mode and "transparency" in reread.info
        rgba = reread.convert("RGBA")
    expected = Image.new("RGB", img.size, (255, 255, 255))
    expected.paste(rgba, (0, 0), rgba)
    assert 0 < np.count_nonzero(np.asarray(rgba)[..., 3] < 255) < img.width * img.height

    # The conversions of the decoded image and of each block of its rows are spied on, each image's own convert:
    # Image.Image.convert itself would be every thread's.
    converted = []

    def spied(img):
        def convert(mode=None, *args, **kwargs):
            converted.append((mode, img.width * img.height))
            return type(img).convert(img, mode, *args, **kwargs)

        img.convert = convert
        return img

    row_blocks = inference._row_blocks
    monkeypatch.setattr(inference, "BLOCK_PIXELS", 1000, raising=False)
    monkeypatch.setattr(inference, "Image", names_of(Image, open=lambda *a, **kw: spied(Image.open(*a, **kw))))
    monkeypatch.setattr(inference, "_row_blocks", lambda img: ((top, spied(rows)) for top, rows in row_blocks(img)))
    decoded = inference.decode_image(body)
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))
    assert max(pixels for to, pixels in converted if to == "RGBA") <= 1000, converted


def test_grey_with_partial_alpha_composites_on_white_as_through_rgba(inference):
    # LA is composited in grey (cheaper in memory than going through RGBA): the pixels must be the same.
    pixels = np.random.default_rng(1).integers(0, 256, (60, 40, 2), dtype=np.uint8)
    img = Image.fromarray(pixels, "LA")
    rgba = img.convert("RGBA")
    expected = Image.new("RGB", img.size, (255, 255, 255))
    expected.paste(rgba, (0, 0), rgba)
    decoded = inference.decode_image(encode(img, "PNG"))
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))


def test_an_exif_block_pillow_cannot_read_is_ignored(inference, monkeypatch):
    # Older Pillows raise on some phones' malformed EXIF; the pixels are still good.
    def broken(img, in_place=False):
        raise SyntaxError("not a TIFF file (header b'' not valid)")

    monkeypatch.setattr(inference, "ImageOps", names_of(inference.ImageOps, exif_transpose=broken))
    assert inference.decode_image(photo_bytes("chelsea.jpg")).size == (451, 300)


@pytest.mark.parametrize(
    "error",
    [ValueError("EXIF data is too long"), KeyError(0x0112), OSError("not enough data"), TypeError("bad tag type")],
)
def test_an_exif_block_pillow_fails_on_in_any_way_is_ignored(inference, monkeypatch, error):
    # A phone's malformed EXIF fails Pillow's parser in more ways than SyntaxError: the pixels are still good.
    def broken(img, in_place=False):
        raise error

    monkeypatch.setattr(inference, "ImageOps", SimpleNamespace(exif_transpose=broken))
    assert inference.decode_image(photo_bytes("chelsea.jpg")).size == (451, 300)


def test_pillows_warnings_about_a_file_stay_out_of_the_logs(inference):
    # They go to stderr, which the container sends to CloudWatch: 20,000 bad EXIF tags were 42,000 lines for one
    # request.
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        img = inference.decode_image(png_with_bad_exif_tags(2_000))
    assert img.size == (2, 4)  # the orientation tag still applied
    assert escaped == []


def test_a_photos_exif_stays_out_of_a_debug_log(model_dir, tmp_path):
    # Pillow logs every EXIF tag it reads or writes at DEBUG, values included: a portrait phone photo (orientation
    # 6, turned in place) put its GPS position, camera and owner's name into `python -m local --log-level debug`'s
    # stderr, where the runtime tier's root logger is DEBUG. The root is set before the module loads, as there.
    import subprocess
    import sys

    exif = Image.Exif()
    exif[0x010F], exif[0x013B], exif[0x0112] = "PhoneMaker", "Jane Q. Owner", 6  # Make, Artist, Orientation
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.123), 3: "E", 4: (2.0, 17.0, 40.456)}  # GPSInfo
    body = tmp_path / "portrait.jpg"
    body.write_bytes(encode(photo("chelsea.jpg").rotate(90, expand=True), "JPEG", exif=exif.tobytes()))
    script = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)\n"
        "sys.path.insert(0, sys.argv[1] + '/code'); import inference\n"
        "print(inference.decode_image(open(sys.argv[2], 'rb').read()).size)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), str(body)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "(451, 300)" in out.stdout, out.stderr[-2000:]
    logged = out.stdout + out.stderr
    assert not [text for text in ("PhoneMaker", "Jane Q. Owner", "29.123", "GPS") if text in logged], logged[-3000:]


@pytest.mark.parametrize(("orientation", "rotate"), [(6, 90), (8, 270), (3, 180)])
def test_exif_orientation_is_applied(inference, classifier, orientation, rotate):
    upright = photo("chelsea.jpg")  # landscape 451x300
    stored = upright.rotate(rotate, expand=True)  # what a camera writes before tagging the orientation
    body = with_exif_orientation(stored, orientation)
    decoded = inference.decode_image(body)
    assert decoded.size == upright.size
    assert top1(classify(inference, classifier, body)) in CAT_LABELS


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_is_applied_where_chromium_applies_it(inference, fmt):
    # The page's decode (Chromium's createImageBitmap, "from-image") turns a PNG's eXIf orientation but not a
    # WebP's: an orientation-6 WebP went to the model upright by curl and on its side from the page.
    upright = photo("chelsea.jpg")  # landscape 451x300
    exif = Image.Exif()
    exif[0x0112] = 6
    body = encode(upright.rotate(90, expand=True), fmt, exif=exif.tobytes())
    expected = upright.size if fmt == "PNG" else (300, 451)
    assert inference.decode_image(body).size == expected


def test_bogus_exif_orientation_is_ignored(inference):
    body = with_exif_orientation(photo("chelsea.jpg"), 42)
    assert inference.decode_image(body).size == (451, 300)


# 1800 / 8 = 225: drafted to 1/8 for a target of the crop (224), to 1/4 for the resize (232 or 256) input_fn uses.
@pytest.mark.parametrize("size", [(4000, 2660), (2700, 1800)])
def test_big_jpeg_is_drafted_and_still_correct(inference, classifier, size):
    big = encode(photo("chelsea.jpg").resize(size, Image.Resampling.BICUBIC), "JPEG", quality=90)
    assert top1(classify(inference, classifier, big)) in CAT_LABELS
    # input_fn takes the drafted decode (several times faster), which gives slightly different pixels.
    pre = classifier.preprocessing
    drafted, full = (inference.preprocess(inference.decode_image(big, draft_to=d), pre) for d in (pre.resize, None))
    assert not np.array_equal(drafted, full)
    np.testing.assert_array_equal(inference.input_fn(big, "image/jpeg").batch, drafted)


@pytest.mark.parametrize("fmt", ["JPEG", "MPO"])
def test_big_jpeg_decodes_at_a_fraction_of_its_size(inference, fmt):
    # MPO is the multi-picture JPEG many phones write; Pillow reports it as its own format.
    big = photo("chelsea.jpg").resize((4000, 2660), Image.Resampling.BICUBIC)
    buf = __import__("io").BytesIO()
    big.save(buf, fmt, quality=90, **({"save_all": True, "append_images": [big]} if fmt == "MPO" else {}))
    assert Image.open(buf).format == fmt
    decoded = inference.decode_image(buf.getvalue(), draft_to=256)
    assert decoded.size == (500, 333), "drafted in the DCT domain to 1/8 (still >= 256 on the short side)"


def test_a_jpeg_of_exactly_4x_the_target_is_drafted_and_one_pixel_less_is_not(inference):
    """README: JPEGs at least 4x the target size are decoded at 1/4 or 1/8 scale (no test pinned the boundary). The
    shorter side decides: a long image whose short side is under 4x is not drafted."""
    for size, decoded in (((1024, 1024), (256, 256)), ((1023, 1023), (1023, 1023)), ((4096, 1023), (4096, 1023))):
        data = encode(photo("chelsea.jpg").resize(size, Image.Resampling.BICUBIC), "JPEG", quality=90)
        assert inference.decode_image(data, draft_to=256).size == decoded, size


def _torchvision_crop(img: Image.Image, pre) -> np.ndarray:
    """torchvision's own resize + centre crop for the artifact's preset (V1: 256, V2 as downloaded: 232), with the
    preprocessing's resampling (torchvision's InterpolationMode of that name)."""
    import torchvision.transforms as T

    resize = T.Resize(pre.resize, interpolation=T.InterpolationMode(pre.interpolation))
    return np.asarray(T.Compose([resize, T.CenterCrop(pre.crop)])(img), dtype=np.uint8)[None]


def _preset_preprocessing(inference, transforms):
    """A preset's published transforms as the Preprocessing serving runs."""
    return inference.Preprocessing(
        resize=transforms.resize_size[0],
        crop=transforms.crop_size[0],
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        interpolation=transforms.interpolation.value,
    )


def test_preprocessing_matches_torchvision_on_the_photos(inference, classifier):
    for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"):
        pixels = inference.preprocess(inference.decode_image(photo_bytes(name)), classifier.preprocessing)
        assert pixels.shape == (1, 224, 224, 3) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(pixels, _torchvision_crop(photo(name), classifier.preprocessing), err_msg=name)


def test_bicubic_preprocessing_gives_efficientnet_b0s_pixels_on_the_photos(inference):
    # EfficientNet-B0's weights were trained on bicubic resizes (256, crop 224): its transforms' own pixels.
    import torchvision

    transforms = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.transforms()
    pre = _preset_preprocessing(inference, transforms)
    assert pre.interpolation == "bicubic"
    for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"):
        pixels = inference.preprocess(inference.decode_image(photo_bytes(name)), pre)
        np.testing.assert_array_equal(pixels, preset_pixels(transforms, photo(name)), err_msg=name)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("resize", [256, 232])  # both presets (V1, V2), whichever one the artifact was built with
@pytest.mark.parametrize(
    "size", [(1000, 300), (300, 1000), (2200, 300), (2400, 300), (300, 2400), (200, 150), (100, 300)]
)
def test_preprocessing_matches_torchvision_on_other_shapes(inference, classifier, size, resize, interpolation):
    pre = dataclasses.replace(classifier.preprocessing, resize=resize, interpolation=interpolation)
    img = photo("chelsea.jpg").resize(size, Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(inference.preprocess(img, pre), _torchvision_crop(img, pre))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(300, 200), (200, 300), (301, 201), (150, 151)])
@pytest.mark.parametrize("resize", [199, 197])  # 224 - 197 = 27: an odd margin, which rounding could shift
def test_preprocessing_pads_like_torchvision_when_resize_is_below_the_crop(
    inference, classifier, size, interpolation, resize
):
    # metadata.json may ask for a resize smaller than the crop: the resized image is padded with black, centred.
    pre = dataclasses.replace(classifier.preprocessing, resize=resize, interpolation=interpolation)
    img = photo("chelsea.jpg").resize(size, Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(inference.preprocess(img, pre), _torchvision_crop(img, pre))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_preprocessing_of_an_extreme_aspect_ratio_stays_close(inference, classifier, interpolation):
    # Beyond 8:1 the crop is resampled from its box (no 256x3000 intermediate): one rounding step at most here.
    pre = dataclasses.replace(classifier.preprocessing, interpolation=interpolation)
    img = photo("chelsea.jpg").resize((4000, 300), Image.Resampling.BICUBIC)
    diff = np.abs(inference.preprocess(img, pre).astype(int) - _torchvision_crop(img, pre))
    assert diff.max() <= 1 and np.count_nonzero(diff) < diff.size // 100


@pytest.mark.parametrize(("long", "resized"), [(2400, "whole"), (2700, "crop")])
def test_up_to_8_to_1_the_whole_image_is_resized_and_beyond_it_only_the_crop(inference, classifier, long, resized):
    # 8:1 is the last ratio whose resized image (2048x256 at most) is made in full, for torchvision's exact pixels;
    # at 9:1 the crop alone is resampled from its box, so the long image is never materialised.
    pre = classifier.preprocessing
    img = photo("chelsea.jpg").resize((long, 300), Image.Resampling.BICUBIC)
    sizes, real = [], img.resize

    def resize(size, *args, **kwargs):
        sizes.append(size)
        return real(size, *args, **kwargs)

    img.resize = resize  # this image's alone
    assert inference.preprocess(img, pre).shape == (1, pre.crop, pre.crop, 3)
    assert sizes == [(long * pre.resize // 300, pre.resize) if resized == "whole" else (pre.crop, pre.crop)]


def test_extreme_aspect_ratio_is_cheap(inference, classifier):
    body = encode(Image.new("RGB", (20_000, 1), "white"), "PNG")
    assert classify(inference, classifier, body, "image/png")["predictions"]


def test_tiny_image_is_served(inference, classifier):
    assert classify(inference, classifier, encode(Image.new("RGB", (1, 1), "red"), "PNG"), "image/png")


# --- named errors --------------------------------------------------------------------------------------
def _raises(inference, error, status, body, content_type="image/jpeg"):
    with pytest.raises(getattr(inference, error)) as info:
        inference.input_fn(body, content_type)
    err = info.value
    assert err.status_code == status
    assert "\n" not in err.message and 0 < len(err.message) <= 300
    assert err.phrase.isascii(), err.phrase  # TorchServe frames the reason phrase by its length in characters
    return err.message


@pytest.mark.parametrize(
    ("body", "content_type", "error", "status", "words"),
    [
        (b"", "image/jpeg", "InvalidImageError", 400, "empty"),
        (b"hello, world", "image/png", "InvalidImageError", 400, "not a readable"),
        # A str body (the toolkit decodes only UTF-8 types) of any characters is a bad image, never a 500.
        ("\ud800 \u0101", "image/png", "InvalidImageError", 400, "not a readable"),
        # One of characters Latin-1 has none of is no empty body: each is a byte ('?') of a bad image.
        ("\u0101\u4e94", "image/png", "InvalidImageError", 400, "not a readable"),
        (polyglot(), "image/jpeg", "InvalidImageError", 400, ""),
        (truncated(photo_bytes("coffee.jpg")), "image/jpeg", "InvalidImageError", 400, "truncated"),
        (truncated(encode(photo("coffee.jpg"), "PNG")), "image/png", "InvalidImageError", 400, ""),
        (animated_gif(), "image/jpeg", "UnsupportedContentTypeError", 415, "GIF"),
        (encode(Image.new("RGB", (8, 8)), "BMP"), "image/png", "UnsupportedContentTypeError", 415, "BMP"),
        (bomb_png(), "image/png", "ImageTooLargeError", 413, "pixels"),
        # Image.open raises ValueError for a text chunk that inflates past Pillow's limit: a bad image, not a 500.
        (text_bomb_png(), "image/png", "InvalidImageError", 400, "not a readable"),
        # After the pixels Image.load reads it, and raises the same ValueError.
        (text_bomb_png(after_idat=True), "image/png", "InvalidImageError", 400, "truncated or corrupt"),
        (
            photo_bytes("coffee.jpg"),
            "text/plain",
            "UnsupportedContentTypeError",
            415,
            "'text/plain' is not one of: application/json, image/jpeg, image/png, image/webp, application/x-image, "
            "image/jpg, image/pjpeg",
        ),
        (photo_bytes("coffee.jpg"), "multipart/form-data", "UnsupportedContentTypeError", 415, "multipart"),
        (photo_bytes("coffee.jpg"), None, "UnsupportedContentTypeError", 415, "(none)"),
        # Present, but only parameters: not called '(none)', and a long one is quoted cut short.
        (photo_bytes("coffee.jpg"), ";;;", "UnsupportedContentTypeError", 415, "';;;' has no media type"),
        (photo_bytes("coffee.jpg"), ";" + "x" * 1000, "UnsupportedContentTypeError", 415, "';" + "x" * 58 + " has"),
        # Quoted without the whitespace around it; a blank one is no content type at all.
        (photo_bytes("coffee.jpg"), " ;charset=utf-8 ", "UnsupportedContentTypeError", 415, "';charset=utf-8' has"),
        (photo_bytes("coffee.jpg"), "   ", "UnsupportedContentTypeError", 415, "'(none)' is not one of"),
        # The message quotes it, and stays one short line (_raises: at most 300 characters).
        (photo_bytes("coffee.jpg"), "image/" + "x" * 1000, "UnsupportedContentTypeError", 415, "image/xxx"),
        ("{not json", "application/json", "InvalidRequestError", 400, "not valid JSON"),
        ("[1, 2]", "application/json", "InvalidRequestError", 400, "object"),
        ('{"img": "x"}', "application/json", "InvalidRequestError", 400, "'image'"),
        ('{"image": 5}', "application/json", "InvalidRequestError", 400, "'image'"),
        ('{"image": "@@@notbase64"}', "application/json", "InvalidRequestError", 400, "base64"),
        ('{"image": "aGVsbG8="}', "application/json", "InvalidImageError", 400, ""),
        ('{"image": "data:text/plain;base64,aGVsbG8="}', "application/json", "UnsupportedContentTypeError", 415, ""),
        ('{"image": "data:;base64,aGVsbG8="}', "application/json", "UnsupportedContentTypeError", 415, "'(none)'"),
        ('{"image": "data:image/png,raw"}', "application/json", "InvalidRequestError", 400, "base64"),
        # Refused for the missing marker even when the data happens to be base64 (the proxy refuses it too).
        (
            json.dumps({"image": "data:image/jpeg," + base64.b64encode(photo_bytes("coffee.jpg")).decode()}),
            "application/json",
            "InvalidRequestError",
            400,
            "must be base64 encoded",
        ),
        ('{"image": "data:image/png;base64"}', "application/json", "InvalidRequestError", 400, "base64"),
        ('{"image": ""}', "application/json", "InvalidRequestError", 400, "'image'"),
        # A character outside base64 is refused, not skipped (the rest would decode into some other image).
        (
            json.dumps({"image": "*" + base64.b64encode(photo_bytes("coffee.jpg")).decode()}),
            "application/json",
            "InvalidRequestError",
            400,
            "base64",
        ),
        # Only MIME's whitespace (spaces, tabs, line breaks) is skipped, as the proxy skips it: not a form feed.
        (
            json.dumps({"image": "\f" + base64.b64encode(photo_bytes("coffee.jpg")).decode()}),
            "application/json",
            "InvalidRequestError",
            400,
            "base64",
        ),
        # A non-ASCII character is not base64 either (b64decode raises a bare ValueError for it, not binascii.Error).
        ('{"image": "\u00e9aGVsbG8="}', "application/json", "InvalidRequestError", 400, "base64"),
        ("[" * 100_000 + "]" * 100_000, "application/json", "InvalidRequestError", 400, "JSON"),
    ],
)
def test_bad_input_raises_its_named_error(inference, classifier, body, content_type, error, status, words):
    assert words in _raises(inference, error, status, body, content_type)


def _red(fmt: str, **params) -> bytes:
    return encode(Image.new("RGB", (16, 16), (200, 10, 10)), fmt, **params)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        pytest.param(_red("GIF"), "GIF", id="gif"),
        pytest.param(_red("BMP"), "BMP", id="bmp"),
        pytest.param(_red("TIFF"), "TIFF", id="tiff-le"),
        pytest.param(b"MM\x00*\x00\x00\x00\x08" + bytes(64), "TIFF", id="tiff-be"),
        pytest.param(_red("ICO"), "ICO", id="ico"),
        pytest.param(_red("EPS"), "EPS", id="eps"),
        pytest.param(_red("PDF"), "PDF", id="pdf"),
        pytest.param(_red("JPEG2000"), "JPEG 2000", id="jp2"),
        pytest.param(_red("JPEG2000", no_jp2=True), "JPEG 2000", id="j2k-codestream"),
        pytest.param(_red("QOI"), "QOI", id="qoi"),
        pytest.param(_red("AVIF"), "AVIF", id="avif"),
        # Pillow has no HEIC decoder: an iPhone photo was a 400 "not a readable image" before it was named.
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC", id="heic"),
        pytest.param(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + bytes(64), "HEIF", id="heif"),
        pytest.param(b"8BPS\x00\x01" + bytes(64), "PSD", id="psd"),
        # Every other signature and brand other_image_format knows, as sent: a dropped one passed unnoticed.
        pytest.param(b"\xc5\xd0\xd3\xc6" + bytes(64), "EPS", id="eps-binary"),
        pytest.param(b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(64), "JPEG XL", id="jxl"),
        pytest.param(b"\xff\x0a\xfa\x7f" + bytes(64), "JPEG XL", id="jxl-codestream"),
        *(
            pytest.param(b"\x00\x00\x00\x18ftyp" + brand + bytes(64), name, id=brand.decode())
            for brand, name in (
                (b"heix", "HEIC"),
                (b"heim", "HEIC"),
                (b"heis", "HEIC"),
                (b"msf1", "HEIF"),
                (b"avis", "AVIF"),
            )
        ),
        pytest.param(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG", id="svg"),
        pytest.param(b'  <svg xmlns="http://www.w3.org/2000/svg"/>', "SVG", id="svg-without-xml-declaration"),
        # As Inkscape writes one: its root element well past the first 64 bytes, within the 256 looked at.
        pytest.param(
            b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            b"<!-- Created with Inkscape (http://www.inkscape.org/) -->\n"
            b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            "SVG",
            id="svg-after-a-comment",
        ),
    ],
)
def test_an_image_format_we_refuse_is_named_in_a_415(inference, classifier, body, name):
    assert inference.other_image_format(body) == name
    message = _raises(inference, "UnsupportedContentTypeError", 415, body, "image/jpeg")
    assert message.startswith(f"{name} images are not accepted")


@pytest.mark.parametrize(
    "body",
    [b'<?xml version="1.0"?>\n<rss version="2.0"/>', b'<html><svg xmlns="http://www.w3.org/2000/svg"/></html>'],
    ids=["xml-not-svg", "html-holding-svg"],
)
def test_markup_that_is_not_an_svg_file_is_not_named_svg(inference, classifier, body):
    # SVG is an XML document whose root is <svg>: another XML document, or HTML with an inline <svg>, is no image.
    assert inference.other_image_format(body) is None
    assert _raises(inference, "InvalidImageError", 400, body).startswith("body is not a readable JPEG, PNG or WebP")


@pytest.mark.parametrize(
    "body",
    [
        b"hello, world",
        b"\x00" * 64,
        b"<html><body>not an image</body></html>",
        b"ftypheic" + bytes(8),
        b"\x00\x00\x00\x18abcdheic" + bytes(8),  # a brand counts only after 'ftyp'
        b"\x00\x00\x00\x18ftypisom" + bytes(8),  # an ISO media file of no image brand (an MP4)
    ],
)
def test_bytes_of_no_known_image_format_are_a_400(inference, classifier, body):
    assert inference.other_image_format(body) is None
    assert "not a readable" in _raises(inference, "InvalidImageError", 400, body, "image/png")


def test_a_refused_format_sent_as_torchserve_passes_a_body_is_named(inference, classifier):
    # TorchServe hands the toolkit each raw body as a bytearray, which no dict can look up (unhashable): an iPhone
    # photo's brand was looked up as one, a TypeError (a 500) where its 415 names it.
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    message = _raises(inference, "UnsupportedContentTypeError", 415, bytearray(heic), "image/jpeg")
    assert message.startswith("HEIC images are not accepted")


def test_a_refused_image_is_named_without_another_parser_reading_it(inference, classifier, monkeypatch):
    """Only the JPEG, PNG and WebP decoders may see a request's bytes: Pillow's other plugins are parsers of formats
    we never serve (its EPS plugin spent about 3 s of CPU scanning a 4 MB file of comment lines to name it)."""
    opened = []
    real_open = Image.open

    def recording_open(fp, mode="r", formats=None):
        opened.append(formats)
        return real_open(fp, mode, formats)

    monkeypatch.setattr(inference, "Image", names_of(Image, open=recording_open))  # the serving code's own
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n" + b"%%comment line\n" * 1000
    assert _raises(inference, "UnsupportedContentTypeError", 415, eps).startswith("EPS images are not accepted")
    assert opened and all(formats is not None and set(formats) <= {"JPEG", "PNG", "WEBP"} for formats in opened)


# application/x-image (SageMaker's generic image type) is taken raw; in a data: URL it was a 415.
@pytest.mark.parametrize("media_type", ["image/jpg", "image/pjpeg", "IMAGE/JPG", "application/x-image"])
def test_image_type_aliases_are_accepted_raw_and_in_a_data_url_as_the_proxy_accepts_them(
    inference, classifier, media_type
):
    coffee = photo_bytes("coffee.jpg")
    assert top1(classify(inference, classifier, coffee, media_type)) == "espresso"
    data_url = f"data:{media_type};base64," + base64.b64encode(coffee).decode()
    assert top1(classify(inference, classifier, json.dumps({"image": data_url}), "application/json")) == "espresso"


@pytest.mark.parametrize("top_k", [0, -1, 21, 1e9, 2.5, "abc", "5", None, True])
def test_top_k_out_of_range_is_refused(inference, classifier, top_k):
    body = json.dumps({"image": base64.b64encode(photo_bytes("coffee.jpg")).decode(), "top_k": top_k})
    assert "top_k" in _raises(inference, "InvalidRequestError", 400, body, "application/json")


def test_the_model_serves_the_proxys_largest_top_k_and_refuses_one_more(inference, classifier):
    """The proxy checks top_k against handlers/proxy_core.py's MAX_TOP_K and passes it on in Accept; the model checks
    it again against its own (the Lambda bundle and the artifact ship apart, so neither imports the other's), and
    each side's tests name 20. A limit raised in the proxy alone had the endpoint refuse what the API took, and in the
    model alone the API refuse what the endpoint serves, with every test passing."""
    from handlers import proxy_core

    coffee, most = photo_bytes("coffee.jpg"), proxy_core.MAX_TOP_K
    result = classify(inference, classifier, coffee, accept=proxy_core.endpoint_accept(most))
    assert len(result["predictions"]) == most
    with pytest.raises(inference.InvalidRequestError, match="top_k"):
        classify(inference, classifier, coffee, accept=proxy_core.endpoint_accept(most + 1))


@pytest.mark.parametrize("literal", ["1" * 5000, "-" + "9" * 5000, "1" + "0" * 20])
def test_a_top_k_of_thousands_of_digits_is_out_of_range_not_invalid_json(inference, classifier, literal):
    """int() refuses a number past 4300 digits (ValueError), and json.loads passed that on: a valid body with a
    too-large top_k was answered 'request body is not valid JSON'."""
    body = f'{{"image": "{base64.b64encode(photo_bytes("coffee.jpg")).decode()}", "top_k": {literal}}}'
    message = _raises(inference, "InvalidRequestError", 400, body, "application/json")
    assert message == f"top_k must be an integer from 1 to 20, got {literal[:40]}"


def test_a_huge_integer_in_a_field_we_do_not_read_is_ignored(inference, classifier):
    body = f'{{"image": "{base64.b64encode(photo_bytes("coffee.jpg")).decode()}", "id": {"7" * 5000}}}'
    assert top1(classify(inference, classifier, body, "application/json")) == "espresso"


@pytest.mark.parametrize("top_k", ["21", "0100", "00", "1000000", "0001000000", "99999999", "1" * 5000])
def test_an_accept_top_k_out_of_range_is_quoted_as_sent(inference, classifier, top_k):
    # A top_k of 7 digits or more was answered "got 21", a number the client never sent, and 0100 "got 100".
    prediction = inference.predict_fn(inference.input_fn(photo_bytes("coffee.jpg"), "image/jpeg"), classifier)
    # The message names where the top_k came from: the Accept header, not the JSON body.
    with pytest.raises(
        inference.InvalidRequestError, match=f"^Accept parameter top_k must .* from 1 to 20, got {top_k[:40]}$"
    ):
        inference.output_fn(prediction, f"application/json;top_k={top_k}")


@pytest.mark.parametrize(
    ("accept", "error", "status"),
    [
        ("text/csv", "UnsupportedAcceptError", 406),
        ("application/json;top_k=99", "InvalidRequestError", 400),
        ("application/json;top_k=abc", "InvalidRequestError", 400),
        ("application/json;top_k=1_0", "InvalidRequestError", 400),  # int() would read 10
        ("application/json;top_k=3=3", "InvalidRequestError", 400),  # the value is all after the first '='
        ("application/json;top_k=000", "InvalidRequestError", 400),  # zeros alone are 0, out of range
        ("application/json;top_k=\u0663", "InvalidRequestError", 400),  # an Arabic-Indic 3
        ("application/json;q=0", "UnsupportedAcceptError", 406),  # q=0: explicitly not acceptable
        ("application/json;q=0.000", "UnsupportedAcceptError", 406),  # q is a number: 0.000 is 0
        ("application/json;q=0, */*", "UnsupportedAcceptError", 406),  # the specific range wins over */*
        ("application/*;q=0, */*", "UnsupportedAcceptError", 406),  # and application/* wins over it too
        ("application/json;top_k=" + "1" * 5000, "InvalidRequestError", 400),  # int() raises past 4300 digits
        ("text/html, */*;q=0", "UnsupportedAcceptError", 406),
    ],
)
@pytest.mark.parametrize("body_top_k", [None, 3])  # a JSON body's own top_k does not excuse a bad Accept
def test_bad_accept_is_refused(inference, classifier, accept, error, status, body_top_k):
    prediction = inference.predict_fn(inference.input_fn(photo_bytes("coffee.jpg"), "image/jpeg"), classifier)
    prediction = dataclasses.replace(prediction, top_k=body_top_k)
    with pytest.raises(getattr(inference, error)) as info:
        inference.output_fn(prediction, accept)
    assert info.value.status_code == status
    assert info.value.phrase.isascii(), info.value.phrase
    if status == 400:  # the message names where the bad top_k came from: the Accept header, not the JSON body
        assert info.value.message.startswith("Accept parameter top_k must be an integer"), info.value.message
    else:  # a 406 quotes the whole header (each here is under the 60 characters quoted)
        assert info.value.message.startswith(f"Accept {accept!r} is not supported"), info.value.message


def test_an_accept_top_k_that_is_no_number_is_quoted_up_to_20_characters(inference, classifier):
    # One short reason phrase however long the parameter: "got 'xxx" and no more than 20 characters of its repr.
    prediction = inference.predict_fn(inference.input_fn(photo_bytes("coffee.jpg"), "image/jpeg"), classifier)
    with pytest.raises(inference.InvalidRequestError) as info:
        inference.output_fn(prediction, "application/json;top_k=" + "x" * 100)
    assert info.value.message == "Accept parameter top_k must be an integer, got '" + "x" * 19


@pytest.mark.parametrize(
    "accept",
    [
        "image/avif,image/webp,image/apng,image/svg+xml",  # what a browser's <img> asks for: quoted whole
        "image/avif,image/webp,image/apng,image/svg+xml,image/*;q=0.8,text/css",  # cut at 60 characters
    ],
)
def test_a_refused_accept_is_quoted_up_to_60_characters(inference, classifier, accept):
    prediction = inference.predict_fn(inference.input_fn(photo_bytes("coffee.jpg"), "image/jpeg"), classifier)
    with pytest.raises(inference.UnsupportedAcceptError) as info:
        inference.output_fn(prediction, accept)
    assert info.value.message == f"Accept {repr(accept)[:60]} is not supported; ask for application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "error", "status"),
    [
        ('{"image": "aGVsbG8=", "top_k": "\u4e94"}', "application/json", "InvalidRequestError", 400),
        ('{"image": "data:image/j\u00e9g;base64,aGVsbG8="}', "application/json", "UnsupportedContentTypeError", 415),
        (b"hello", "image/j\u00e9g", "UnsupportedContentTypeError", 415),
    ],
)
def test_an_error_quoting_non_ascii_input_has_an_ascii_reason_phrase(
    inference, classifier, body, content_type, error, status
):
    """The phrase goes back to TorchServe's frontend prefixed with its length in characters, then as UTF-8 bytes
    (ts/protocol/otf_message_handler.py): one non-ASCII character and the frontend misreads the rest of the frame,
    the request hangs until the response timeout and the worker is restarted. So non-ASCII is escaped."""
    message = _raises(inference, error, status, body, content_type)
    assert "\\u4e94" in message or "\\xe9" in message


def test_a_long_error_message_is_cut_at_300_characters_and_no_fewer(inference, classifier):
    # The message is the reply's reason phrase: one short line, yet the 300 characters leave room for the list of
    # content types that follows a long one quoted.
    message = _raises(inference, "UnsupportedContentTypeError", 415, b"x", "image/" + "x" * 1000)
    assert len(message) == 300
    assert inference.InvalidRequestError("y" * 300).message == "y" * 300


def test_an_error_message_of_several_lines_is_one_line(inference):
    # Every message quotes input by its repr today; one that did not would put a line break in the reason phrase,
    # and the toolkit appends its traceback after the first line.
    error = inference.InvalidImageError("first line\nsecond\r\n  third\tend")
    assert error.message == error.phrase == str(error) == "first line second third end"


def test_pixel_limit_is_inclusive(inference, monkeypatch):
    monkeypatch.setattr(inference, "MAX_PIXELS", 100)
    assert inference.decode_image(encode(Image.new("RGB", (10, 10)), "PNG")).size == (10, 10)
    with pytest.raises(inference.ImageTooLargeError) as info:
        inference.decode_image(encode(Image.new("RGB", (101, 1)), "PNG"))
    assert info.value.status_code == 413


def test_the_pixel_limit_is_the_readmes_fifty_million(inference):
    # At its edge: 3561x14041 is 50,000,001 pixels, both sides within the million a side allows.
    with pytest.raises(inference.ImageTooLargeError, match=r"\(limit 50,000,000\)") as info:
        inference.decode_image(encode(Image.new("L", (3561, 14041)), "PNG"))
    assert info.value.status_code == 413
    assert inference.decode_image(encode(Image.new("L", (5000, 10000)), "PNG")).size == (5000, 10000)


def test_pixel_limit_holds_without_pillows_own_check(inference, monkeypatch):
    # Image.MAX_IMAGE_PIXELS is a process-wide setting any other import may change (None turns Pillow's check off):
    # the limit is decode_image's own, not only Pillow's. Pillow's stays at 50,000,000 here, far above 101 pixels
    # (set to None it would be every thread's).
    monkeypatch.setattr(inference, "MAX_PIXELS", 100)
    assert inference.decode_image(encode(Image.new("RGB", (10, 10)), "PNG")).size == (10, 10)
    with pytest.raises(inference.ImageTooLargeError, match="image is 101x1; the limit is 100 pixels") as info:
        inference.decode_image(encode(Image.new("RGB", (101, 1)), "PNG"))
    assert info.value.status_code == 413


@pytest.mark.parametrize("size", [(1, 1_000_001), (1_000_001, 1)])
def test_a_side_over_a_million_pixels_is_413_before_it_is_decoded(inference, size):
    # Within the pixel limit, but Pillow holds 8 bytes of row pointers per row per copy: a 1x50,000,000 grey PNG with
    # alpha (146 KB) added 1.7 GB to the worker. A side is a row count after EXIF orientation, so columns count too.
    with pytest.raises(inference.ImageTooLargeError, match="1,000,000 pixels a side") as info:
        inference.decode_image(encode(Image.new("L", size), "PNG"))
    assert info.value.status_code == 413
    assert inference.decode_image(encode(Image.new("L", (1, 1_000_000)), "PNG")).size == (1, 1_000_000)


def test_a_webp_over_25_megapixels_is_413_before_it_is_decoded(inference):
    # libwebp + Pillow hold ~15 bytes a pixel while decoding: a 2 KB 7071x7071 WebP added 767 MB to the worker.
    big = encode(Image.new("RGB", (5001, 5000)), "WEBP", lossless=True)
    with pytest.raises(inference.ImageTooLargeError, match="limit for WebP is 25,000,000 pixels") as info:
        inference.decode_image(big)
    assert info.value.status_code == 413
    assert inference.decode_image(encode(Image.new("RGB", (5000, 5000)), "WEBP", lossless=True)).size == (5000, 5000)
    # The same pixels as a PNG (8 bytes a pixel) are still taken.
    assert inference.decode_image(encode(Image.new("RGB", (5001, 5000)), "PNG")).size == (5001, 5000)


def test_input_fn_before_model_fn_names_the_problem(inference, monkeypatch):
    monkeypatch.setattr(inference, "_model", None)
    with pytest.raises(inference.ModelLoadError, match="before model_fn"):
        inference.input_fn(photo_bytes("coffee.jpg"), "image/jpeg")


def test_errors_keep_their_status_in_aws_toolkit(inference):
    from sagemaker_inference.errors import BaseInferenceToolkitError

    for name in (
        "InvalidImageError",
        "InvalidRequestError",
        "UnsupportedContentTypeError",
        "UnsupportedAcceptError",
        "ImageTooLargeError",
    ):
        assert issubclass(getattr(inference, name), BaseInferenceToolkitError), name


def test_a_model_load_error_is_what_torchserves_worker_reports_as_a_failed_load(inference):
    """TorchServe's worker (ts/model_service_worker.py) catches a RuntimeError from model_fn and logs "Failed to
    load model ..., exception <message>", the line local/torchserve.py reads first to say why the stack did not
    start; any other exception escapes the worker's load instead."""
    assert issubclass(inference.ModelLoadError, RuntimeError)


def test_errors_keep_their_status_without_aws_toolkit(model_dir):
    # A venv of requirements.txt alone has no sagemaker-inference: the errors then derive from the module's own
    # stand-in for the toolkit's class, and the local stack's runtime tier answers with its status_code and message.
    import subprocess

    script = (
        "import json, sys; sys.modules['sagemaker_inference'] = None; sys.path.insert(0, sys.argv[1] + '/code')\n"
        "import inference\n"
        "names = ['InvalidRequestError', 'UnsupportedAcceptError', 'ImageTooLargeError']\n"
        "names += ['UnsupportedContentTypeError']\n"
        "errors = [getattr(inference, name)('caf\\u00e9\\n  sent') for name in names]\n"
        "shown = [[e.status_code, e.message, e.phrase] for e in errors]\n"
        "print(json.dumps([inference._ToolkitError.__module__, shown]))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(model_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    stand_in, errors = json.loads(out.stdout)
    assert stand_in == "inference"  # the toolkit's class did not import
    assert errors == [[status, "caf\\xe9 sent", "caf\\xe9 sent"] for status in (400, 406, 413, 415)]


# --- numerics: the served backend against eager torchvision -------------------------------------------------
def test_backend_agrees_with_eager_torchvision(inference, classifier, model_dir):
    """End to end: the bytes a client sends, served, against torchvision's own transforms + the eager model."""
    import torch
    import torchvision

    eager = torchvision.models.mobilenet_v2()
    eager.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    eager.eval()
    preset = json.loads((model_dir / "metadata.json").read_text())["weights_preset"]
    transform = torchvision.models.MobileNet_V2_Weights[preset].transforms()
    for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"):
        with torch.inference_mode():
            reference = torch.softmax(eager(transform(photo(name))[None]), 1)[0].numpy()
        served = inference.predict_fn(inference.input_fn(photo_bytes(name), "image/jpeg"), classifier)
        probs = np.asarray(served.probs).reshape(-1)
        assert list(np.argsort(-probs)[:5]) == list(np.argsort(-reference)[:5]), name
        assert np.abs(probs - reference).max() < 1e-4, name


IDLE_CPU_SCRIPT = """
import json, os, statistics, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[1] + "/code")
import inference
import onnxruntime as ort

def runnable_ns():
    # Time the other threads spent on a CPU or queued for one (schedstat's first two fields): what a spinning
    # worker wants whether or not a loaded machine gives it the CPU.
    total = 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == threading.get_native_id():
            continue
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += sum(int(field) for field in f.read().split()[:2])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return total

def idle_ms(run):
    batch = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    run(batch)
    burnt, wanted = [], []
    for _ in range(7):
        run(batch)
        cpu, queued = time.process_time(), runnable_ns()
        time.sleep(0.1)
        burnt.append((time.process_time() - cpu) * 1000)
        wanted.append((runnable_ns() - queued) / 1e6)
    return {"cpu": statistics.median(burnt), "runnable": statistics.median(wanted)}

served = inference.model_fn(sys.argv[1])
plain = ort.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
print(json.dumps({
    "backend": served.backend,
    "served": idle_ms(served.run),
    "ort_defaults": idle_ms(lambda b: plain.run(None, {"input": b})),
}))
"""


def test_onnxruntime_workers_do_not_spin_after_a_prediction(model_dir):
    # Spinning workers would steal the CPU the next request's decode needs on a 2-vCPU instance. A fresh
    # process, so that no torch/OpenMP thread of the test session burns CPU into the measurement.
    import subprocess
    import sys

    from tests.ci import require_proc

    require_proc("each thread's CPU time (schedstat)")
    out = subprocess.run(
        [sys.executable, "-c", IDLE_CPU_SCRIPT, str(model_dir)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    idle = json.loads(out.stdout.strip().splitlines()[-1])
    assert idle["backend"].startswith("onnxruntime")
    # The control proves the probe sees spinning: ONNX Runtime's defaults keep workers busy after Run(). Each side
    # is judged by the measure that load only moves away from its bar: a spinning worker is runnable whether or
    # not it gets the CPU (by CPU alone, a loaded machine held the control to 18 ms), and an idle served worker
    # gets less CPU still (its runnable time can grow while it queues to go to sleep).
    assert idle["ort_defaults"]["runnable"] > 20, idle
    assert idle["served"]["cpu"] < 10, idle


# --- threads under a CPU quota ----------------------------------------------------------------------------
def _cgroup(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1 without a quota
        ({"cpu/cpu.cfs_quota_us": "50000\n"}, None),  # no period to divide by
        ({"cpu/cpu.cfs_period_us": "100000\n"}, None),  # a period without a quota
        ({"cpu/cpu.cfs_quota_us": "", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # an empty quota file
        ({"cpu.max": "150000 0\n"}, None),
        ({"cpu.max": "0 100000\n"}, None),  # a zero quota is read as none, not as 0 CPUs
        ({"cpu.max": "garbage\n"}, None),
        ({"cpu.max": "1 2 3\n"}, None),
        ({"cpu.max": "\xff\xfe"}, None),
        ({"cpu.max": f"{10**400} 1"}, None),  # past a float: not a quota any kernel writes
        ({"cpu.max": "1" * 5000 + " 100000"}, None),  # past int()'s digit limit
        ({}, None),
    ],
)
def test_cgroup_cpu_limit(inference, tmp_path, files, cpus):
    (tmp_path / "proc-cgroup").write_text("0::/\n")  # a container's own cgroup namespace
    root = _cgroup(tmp_path / "sys", files)
    assert inference.cgroup_cpu_limit(root, str(tmp_path / "proc-cgroup")) == cpus


def test_cgroup_cpu_limit_prefers_v2(inference, tmp_path):
    root = _cgroup(
        tmp_path / "sys",
        {"cpu.max": "200000 100000", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"},
    )
    assert inference.cgroup_cpu_limit(root, str(tmp_path / "no-such-file")) == 2.0


@pytest.mark.parametrize(
    ("proc", "files", "cpus"),
    [
        # Without a cgroup namespace the process's cgroup is a path under the mount; its parents' quotas bind too.
        ("0::/pods/web\n", {"pods/web/cpu.max": "400000 100000", "pods/cpu.max": "150000 100000"}, 1.5),
        ("0::/pods/web\n", {"pods/web/cpu.max": "50000 100000", "pods/cpu.max": "max 100000"}, 0.5),
        ("0::/pods/web\n", {"pods/web/cpu.max": "max 100000", "cpu.max": "200000 100000"}, 2.0),
        ("0::/pods/web\n", {"pods/web/cpu.max": "max 100000"}, None),
        ("0::/elsewhere\n", {"cpu.max": "300000 100000"}, 3.0),  # a path not under this mount: its root
        ("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n", {"cpu.max": "100000 100000"}, 1.0),  # no v2 line
        ("0::/../../etc\n", {"cpu.max": "100000 100000"}, 1.0),
        ("0::/../web\n", {"web/cpu.max": "100000 100000", "../cpu.max": "50000 100000"}, 1.0),  # not above the mount
        # A cgroup's name may be any bytes: one that is not UTF-8 is read as no path, not a failed model_fn.
        (b"0::/caf\xe9\n", {"cpu.max": "100000 100000"}, 1.0),
    ],
)
def test_cgroup_cpu_limit_follows_the_process_cgroup(inference, tmp_path, proc, files, cpus):
    (tmp_path / "proc-cgroup").write_bytes(proc if isinstance(proc, bytes) else proc.encode())
    root = _cgroup(tmp_path / "sys", files)
    assert inference.cgroup_cpu_limit(root, str(tmp_path / "proc-cgroup")) == cpus


@pytest.mark.parametrize(
    ("affinity", "limit", "threads"),
    [(2, None, 2), (2, 1.5, 2), (4, 1.0, 1), (2, 0.25, 1), (2, 8.0, 2), (4, 2.2, 3), (0, None, 1)],
)
def test_model_threads_follow_a_cpu_quota(inference, monkeypatch, affinity, limit, threads):
    monkeypatch.setattr(inference, "os", names_of(inference.os, sched_getaffinity=lambda pid: set(range(affinity))))
    monkeypatch.setattr(inference, "cgroup_cpu_limit", lambda: limit)
    assert inference._threads() == threads
    import onnxruntime as ort

    assert inference.ort_session_options(ort).intra_op_num_threads == threads
    assert inference.ort_session_options(ort, 3).intra_op_num_threads == 3  # a count given (the bench's) is kept


@pytest.mark.parametrize(("cpu_count", "threads"), [(4, 4), (None, 1)])
def test_model_threads_without_cpu_affinity(inference, monkeypatch, cpu_count, threads):
    # macOS (a local stack) has no sched_getaffinity: the CPU count, or one thread when even that is unknown.
    without = {name: value for name, value in vars(inference.os).items() if name != "sched_getaffinity"}
    monkeypatch.setattr(inference, "os", names_of(SimpleNamespace(**without), cpu_count=lambda: cpu_count))
    monkeypatch.setattr(inference, "cgroup_cpu_limit", lambda: None)
    assert inference._threads() == threads


def test_onnxruntime_runs_operators_one_at_a_time_fully_optimised_spinning_only_within_a_run(inference):
    # README: workers spin within a run and are stopped when it returns. None of these settings changes an answer:
    # only `make bench`'s timings would show one gone.
    import onnxruntime as ort

    opts = inference.ort_session_options(ort, 2)
    assert opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    entries = ("session.intra_op.allow_spinning", "session.force_spinning_stop")
    assert [opts.get_session_config_entry(key) for key in entries] == ["1", "1"]


AVX512 = {"avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"}  # what MLAS takes for AVX-512 (Skylake-SP on)


@pytest.mark.parametrize(
    ("flags", "exact"),
    [
        ({"avx", "avx2", "fma"}, True),  # Zen 2, Haswell-Broadwell: vpmaddubsw clips
        (AVX512, True),  # Skylake-SP: AVX-512 without VNNI clips too
        (AVX512 | {"avx512_vnni"}, False),  # Cascade Lake on, Zen 4: exact already
        ({"avx2", "avx_vnni"}, False),  # Alder Lake on
        (AVX512 | {"avx512_vnni", "avx_vnni", "amx_int8", "amx_tile"}, False),  # Sapphire Rapids
        # A virtual CPU may hide AVX-512 VNNI and show AVX-VNNI: MLAS's AVX-512 kernel replaces the AVX-VNNI one
        (AVX512 | {"avx_vnni"}, True),
        # AMX hiding VNNI: MLAS's tiles take its int8 GEMMs, not the 1x1 Convs (ConvSym: VNNI or vpmaddubsw only)
        (AVX512 | {"amx_int8", "amx_tile"}, True),
        ({"avx2", "amx_int8", "amx_tile"}, True),
        (AVX512 | {"amx_bf16", "amx_tile"}, True),
        ({"avx2", "avx512f", "avx_vnni"}, False),  # AVX-512F alone (no BW/DQ/VL) is not MLAS's AVX-512: AVX-VNNI
        (AVX512 - {"avx512vl"} | {"avx_vnni"}, False),  # nor is it without VL (a virtual CPU may hide it alone)
        ({"sse4_2"}, False),  # no AVX2: on Linux ONNX Runtime has one kernel for u8s8 and u8u8
        (set(), False),  # macOS, an ARM CPU: no /proc/cpuinfo flags to go by
    ],
)
def test_onnxruntime_computes_int8_products_exactly_where_they_would_saturate(inference, flags, exact):
    # README "int8 (opt-in)": on x86 without VNNI, the int8 graph agreed with fp32 a third as well (its u8 x s8
    # sums clipped) until ONNX Runtime was told to use its exact u8 x u8 kernels. On a VNNI CPU that would only
    # cost speed: there the option must stay unset.
    import onnxruntime as ort

    opts = inference.ort_session_options(ort, 2, frozenset(flags))
    if exact:
        assert opts.get_session_config_entry("session.x64quantprecision") == "1"
    else:
        with pytest.raises(RuntimeError, match="does not have configuration"):
            opts.get_session_config_entry("session.x64quantprecision")


@pytest.mark.parametrize(
    ("flags", "exact"), [({"avx2", "fma"}, True), (AVX512 | {"avx512_vnni", "amx_int8", "amx_tile"}, False)]
)
def test_model_fns_onnxruntime_session_goes_by_this_cpus_flags(inference, tmp_path, monkeypatch, flags, exact):
    # model_fn passes no flags: /proc/cpuinfo's decide. The int8 tests' own sessions show that only on a CPU without
    # VNNI (on a VNNI host they answer the same either way), so on such a host nothing else would notice the
    # served session ignoring the CPU.
    import onnxruntime as ort

    # The session the backend serves, as its run() holds it: onnxruntime's own InferenceSession replaced would be
    # every thread's.
    monkeypatch.setattr(inference, "cpu_flags", lambda: frozenset(flags))
    run, _ = inference._onnxruntime_backend(identity_graph(tmp_path, 2, [1, 224, 224, 3]), 224)
    session = inspect.getclosurevars(run).nonlocals["session"]
    assert isinstance(session, ort.InferenceSession)
    opts = session.get_session_options()
    if exact:
        assert opts.get_session_config_entry("session.x64quantprecision") == "1"
    else:
        with pytest.raises(RuntimeError, match="does not have configuration"):
            opts.get_session_config_entry("session.x64quantprecision")


def test_cpu_flags_come_from_the_first_cpu_in_proc_cpuinfo(inference, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n\n"
        "processor\t: 1\nflags\t\t: fpu sse2 avx2 fma avx512_vnni\n"
    )
    assert inference.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx2", "fma"}
    assert inference.cpu_flags(str(tmp_path / "absent")) == frozenset()  # macOS: nothing, and no int8 setting


def test_cpu_flags_of_a_cpuinfo_not_ascii_or_not_readable(inference, tmp_path):
    # A model name of any bytes (a vendor's registered sign, a BIOS's garbage) is read past, not a failed model_fn;
    # a cpuinfo that cannot be read for another reason than its absence (here a directory) is no flags either.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_bytes(b"processor\t: 0\nmodel name\t: Intel\xc2\xae Xeon\xc2\xae \xff\nflags\t\t: fpu avx2\n")
    assert inference.cpu_flags(str(cpuinfo)) == {"fpu", "avx2"}
    assert inference.cpu_flags(str(tmp_path)) == frozenset()


@pytest.mark.parametrize("vendored", [True, False])
def test_the_vendored_packages_for_this_python_come_first(inference, tmp_path, monkeypatch, vendored):
    # model.package unpacks the cp312 onnxruntime wheel in code/vendor/cp312: it must win over any other installed.
    vendor = tmp_path / "code" / "vendor" / f"cp{sys.version_info[0]}{sys.version_info[1]}"
    if vendored:
        vendor.mkdir(parents=True)
    monkeypatch.setattr(inference, "__file__", str(tmp_path / "code" / "inference.py"))
    path = ["/site-packages"]
    monkeypatch.setattr(inference, "sys", names_of(sys, path=path))  # its own sys: sys.path is every thread's imports'
    inference._add_vendored_packages()
    inference._add_vendored_packages()  # model_fn again in the same worker: the path is not added twice
    assert path == ([str(vendor), "/site-packages"] if vendored else ["/site-packages"])


@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.jpg", "chelsea.jpg", "rocket.jpg"])
@pytest.mark.parametrize("params", [{}, {"progressive": True}, {"progressive": True, "optimize": True}])
def test_real_jpegs_have_a_handful_of_scans(inference, classifier, name, params):
    data = photo_bytes(name) if not params else encode(photo(name), "JPEG", **params)
    assert inference.jpeg_scan_count(data) in (1, 10)
    assert classify(inference, classifier, data)["predictions"]


def test_a_jpeg_of_many_scans_is_refused_before_libjpeg_decodes_them(inference, classifier):
    """Each scan is decoded over the whole image: 1,000 repeated scans of a 7000x7000 JPEG (0.5 MB) took 37 s to
    decode, 50,000 (4 MB) half an hour, with the client long gone. The limit is inclusive."""
    limit = 100  # README: "A JPEG of more than 100 scans is refused"
    at_limit = many_scans_jpeg(limit)
    assert inference.jpeg_scan_count(at_limit) == limit
    assert classify(inference, classifier, at_limit)["predictions"]
    for scans in (limit + 1, 20_000):
        data = many_scans_jpeg(scans)
        assert inference.jpeg_scan_count(data) == limit + 1  # counting stops there
        with pytest.raises(inference.InvalidImageError, match="scans") as caught:
            inference.input_fn(data, "image/jpeg")
        assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("data", "scans"),
    [
        (b"\xff\xd8", 0),
        (
            b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 6 + b"\xff\x00\xff\xd0\xff\xff\xda\x00\x08",
            2,
        ),  # stuffing, RSTn, fill
        (b"\xff\xd8\xff\xff\xff\xff\xda\x00\x02", 1),  # any number of fill bytes before a marker
        (b"\xff\xd8\xff\xfe\x00\x06\xff\xda\x00\x00\xff\xda", 1),  # a comment holding FF DA is skipped
        (b"\xff\xd8\xff\xfe\x00\x02\xff\xda\x00\x02", 1),  # an empty comment (its length field alone), then a scan
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 6 + b"junk\xff\xd9\xff\xda", 1),  # nothing after EOI counts
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 6 + b"\xff\xd9\x00\x02\xff\xda", 1),  # nor what looks like a length
        (b"\xff\xd8\xff\x01\xff\xd7\xff\xd8\xff\xda\x00\x02", 1),  # TEM, RST7, a stray SOI: no length follows
        (b"\xff\xd8\xff\xda\x00", 1),  # cut inside a length
        (b"\xff\xd8junk\xff\xff\xff", 0),
    ],
)
def test_jpeg_scan_count_walks_markers_as_libjpeg_does(inference, data, scans):
    assert inference.jpeg_scan_count(data) == scans


@pytest.mark.parametrize("alphas", [17, 256, 257, 300, 1024])
def test_a_palette_png_with_more_alphas_than_any_palette_is_read_as_if_it_had_256(inference, classifier, alphas):
    """Pillow raised "palette index out of range" converting one with over 256 (an uncaught ValueError: the
    container's 500, the proxy's 502 "the model failed")."""
    pixels = np.asarray(inference.decode_image(palette_png_with_long_trns(alphas)))
    assert np.array_equal(pixels, np.asarray(inference.decode_image(palette_png_with_long_trns(min(alphas, 256)))))
    assert classify(inference, classifier, palette_png_with_long_trns(alphas), "image/png")["predictions"]


@pytest.mark.parametrize("index", [256, 280])
def test_a_palette_png_whose_one_transparent_entry_is_past_256_is_served_opaque(inference, classifier, index):
    """A tRNS of all 255 but one 0 is named by that entry's index; past 255 Pillow's convert raised "palette
    index out of range", and a good image was a 400."""
    body = palette_png_with_long_trns(trns=b"\xff" * index + b"\x00" + b"\xff" * 19)
    assert Image.open(io.BytesIO(body)).info["transparency"] == index
    opaque = palette_png_with_long_trns(trns=b"\xff" * 256)
    assert np.array_equal(np.asarray(inference.decode_image(body)), np.asarray(inference.decode_image(opaque)))
    assert classify(inference, classifier, body, "image/png")["predictions"]


def test_a_palette_pngs_last_entry_may_be_its_transparent_one(inference):
    """Entry 255 is the last a palette has, not one past it: transparent, it composites on white."""
    img = Image.new("P", (2, 1))
    img.putpalette(bytes(v for v in range(255) for _ in "RGB") + bytes((10, 20, 30)))  # grey, then a dark blue
    img.putpixel((0, 0), 255)
    img.putpixel((1, 0), 7)
    body = encode(img, "PNG", transparency=255)
    assert Image.open(io.BytesIO(body)).info["transparency"] == 255
    decoded = inference.decode_image(body)
    assert [decoded.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (7, 7, 7)]


def test_a_palette_pngs_entry_255_keeps_its_alpha_in_a_trns_longer_than_256(inference):
    """A tRNS past 256 entries is cut to the palette's 256, not 255: entry 255, transparent, composites on white."""
    img = Image.new("P", (2, 1))
    img.putpalette(bytes(v for v in range(255) for _ in "RGB") + bytes((10, 20, 30)))  # grey, then a dark blue
    img.putpixel((0, 0), 255)
    img.putpixel((1, 0), 7)
    png = encode(img, "PNG")
    trns = b"\xff" * 255 + b"\x00" + b"\x80" * 44
    chunk = len(trns).to_bytes(4, "big") + b"tRNS" + trns + zlib.crc32(b"tRNS" + trns).to_bytes(4, "big")
    at = png.index(b"IDAT") - 4
    body = png[:at] + chunk + png[at:]
    assert Image.open(io.BytesIO(body)).info["transparency"] == trns
    decoded = inference.decode_image(body)
    assert [decoded.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (7, 7, 7)]


def test_a_text_chunk_after_the_pixels_pillow_cannot_read_is_a_bad_image(inference, classifier):
    # Image.load reads the chunks after IDAT, and raises SyntaxError for a zTXt of an unknown compression method (1):
    # a 400 like any corrupt image, not a 500 with a traceback.
    png = encode(Image.new("RGB", (8, 8)), "PNG")
    text = b"comment\x00\x01" + zlib.compress(b"text")
    chunk = len(text).to_bytes(4, "big") + b"zTXt" + text + zlib.crc32(b"zTXt" + text).to_bytes(4, "big")
    body = png[:-12] + chunk + png[-12:]  # before IEND: its length, type and CRC end the file
    assert _raises(inference, "InvalidImageError", 400, body, "image/png") == "image data is truncated or corrupt"


@pytest.mark.parametrize("error", [ValueError("palette index out of range"), OSError("broken data stream")])
def test_colour_data_pillow_cannot_convert_is_an_invalid_image(inference, classifier, monkeypatch, error):
    def broken(img):
        raise error

    monkeypatch.setattr(inference, "_to_rgb", broken)
    with pytest.raises(inference.InvalidImageError, match="colour data") as caught:
        inference.input_fn(palette_png_with_long_trns(), "image/png")
    assert caught.value.status_code == 400


def test_ff_da_bytes_that_are_not_scans_do_not_count(inference, classifier):
    # The quick byte count sends a file to the marker walk, which skips a comment holding the same bytes. Progressive:
    # a baseline photo is single pass and not counted at all.
    comment = b"\xff\xda" * (inference.MAX_JPEG_SCANS + 1)
    data = encode(photo("coffee.jpg"), "JPEG", progressive=True)
    assert not inference.single_pass_jpeg(data)
    padded = with_jpeg_comment(data, comment)
    assert padded.count(b"\xff\xda") > inference.MAX_JPEG_SCANS and not inference.too_many_scans(padded)
    assert top1(classify(inference, classifier, padded)) == "espresso"
    assert inference.too_many_scans(many_scans_jpeg(inference.MAX_JPEG_SCANS + 1))
    # At the limit, one FF DA more in a comment makes the quick count pass it, and the walk still finds the limit.
    at_limit = many_scans_jpeg(inference.MAX_JPEG_SCANS)
    padded = with_jpeg_comment(at_limit, b"\xff\xda")
    assert inference.jpeg_scan_count(padded) == inference.MAX_JPEG_SCANS and not inference.too_many_scans(padded)
    assert classify(inference, classifier, padded)["predictions"]


def with_jpeg_comment(jpeg: bytes, comment: bytes) -> bytes:
    """The JPEG with a comment segment (FF FE, its length, the bytes) right after SOI."""
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def patched(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes((value,)) + data[at + 1 :]


@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.jpg", "chelsea.jpg", "rocket.jpg"])
def test_a_baseline_photo_is_single_pass_and_skips_the_ff_da_count(inference, classifier, monkeypatch, name):
    """libjpeg reads a sequential JPEG whose first scan holds every component in one pass (its jdinput.c), so the
    count of FF DA bytes, a pass over the whole body, is skipped for it: 0.4-0.9 ms of a 3 MB photo's 31 ms."""
    data = photo_bytes(name)
    assert inference.single_pass_jpeg(data)
    grey = encode(photo(name).convert("L"), "JPEG")
    assert inference.single_pass_jpeg(grey)
    counted = []
    monkeypatch.setattr(inference, "ff_da_count", lambda *args: counted.append(1) or 0)
    assert classify(inference, classifier, data)["predictions"]
    assert counted == []
    assert classify(inference, classifier, encode(photo(name), "JPEG", progressive=True))["predictions"]
    assert counted == [1]


def test_what_is_not_single_pass_is_counted(inference):
    data = photo_bytes("coffee.jpg")
    sof, sos = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    assert data[sof + 9] == 3 and data[sos + 4] == 3  # Nf, Ns: three components, all in the first scan
    assert not inference.single_pass_jpeg(encode(photo("coffee.jpg"), "JPEG", progressive=True))
    assert not inference.single_pass_jpeg(many_scans_jpeg(inference.MAX_JPEG_SCANS + 1))
    assert not inference.single_pass_jpeg(patched(data, sos + 4, 1))  # a first scan of one component of three
    assert not inference.single_pass_jpeg(patched(data, sof + 1, 0xC2))  # the same frame, progressive
    assert not inference.single_pass_jpeg(patched(data, sof + 1, 0xC5))  # hierarchical: libjpeg refuses it
    assert inference.single_pass_jpeg(patched(data, sof + 1, 0xC1))  # extended sequential
    assert inference.single_pass_jpeg(patched(data, sof + 1, 0xC3))  # lossless: sequential, as jdinput.c reads it
    assert inference.single_pass_jpeg(patched(data, sof + 1, 0xCB))  # and lossless arithmetic coded
    # Arithmetic coded (SOF9): its conditioning table (DAC, FF CC), before the frame or after it, is no frame header.
    dac, arithmetic = b"\xff\xcc\x00\x04\x00\x01", patched(data, sof + 1, 0xC9)
    assert inference.single_pass_jpeg(arithmetic[:sof] + dac + arithmetic[sof:])
    assert inference.single_pass_jpeg(arithmetic[:sos] + dac + arithmetic[sos:])
    twice = data[:sos] + data[sof : sof + 2 + int.from_bytes(data[sof + 2 : sof + 4], "big")] + data[sos:]
    assert not inference.single_pass_jpeg(twice)  # a second frame header
    assert not inference.single_pass_jpeg(data[:sof] + data[sos:])  # a scan without a frame
    assert not inference.single_pass_jpeg(data[:sos])  # headers and no scan
    assert not inference.single_pass_jpeg(data[: sof + 9])  # cut before Nf
    assert not inference.single_pass_jpeg(data[: sos + 4])  # cut before Ns
    # A frame header of length 2 overlapping a scan header, cut before either count: neither is read as the other.
    assert not inference.single_pass_jpeg(b"\xff\xd8\xff\xc0\x00\x02\xff\xda\x00")


@pytest.mark.parametrize("scans", [2, 20_000])
def test_a_baseline_jpeg_of_repeated_scans_is_refused_by_libjpeg_after_one(inference, classifier, scans):
    """Single pass, it is not counted: libjpeg ends at the second scan (JERR_EOI_EXPECTED), so the copies after
    it cost nothing, where a progressive file's repeated passes each cost a pass over the image."""
    data = baseline_many_scans_jpeg(scans)
    assert inference.single_pass_jpeg(data) and inference.ff_da_count(data) == scans
    with pytest.raises(inference.InvalidImageError, match="corrupt") as caught:
        inference.input_fn(data, "image/jpeg")
    assert caught.value.status_code == 400
    assert classify(inference, classifier, baseline_many_scans_jpeg(1))["predictions"]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 18])
@pytest.mark.parametrize("length", [0, 1, 2, 3, 1000, 1001])
def test_ff_da_count_finds_every_pair_whatever_the_blocks(inference, block, length):
    # Bytes drawn from FF, DA and 00 only: pairs at every offset, runs of FF before a DA, pairs across each block edge.
    data = np.random.default_rng(length).choice(np.array([0xFF, 0xDA, 0x00], dtype=np.uint8), length).tobytes()
    expected = sum(data[i] == 0xFF and data[i + 1] == 0xDA for i in range(len(data) - 1))
    assert expected > 100 or length < 1000
    assert inference.ff_da_count(data, block) == expected
    assert inference.ff_da_count(b"\xff\xda" * 3 + data, block) == expected + 3


@pytest.mark.parametrize("kind", ["baseline", "progressive", "mpo"])
def test_a_jpeg_goes_to_libjpeg_in_one_read_and_decodes_to_pillows_pixels(inference, monkeypatch, kind):
    """Pillow reads 64 KB at a time, and libjpeg suspends at the end of each for more: the whole body in one read is
    2% faster on a 3 MB photo (make bench's preprocessing row), with the pixels Pillow's own reads give."""
    img = photo("chelsea.jpg").resize((1600, 1200))
    params = {"baseline": {}, "progressive": {"progressive": True}, "mpo": {"save_all": True, "append_images": [img]}}
    image_format = "MPO" if kind == "mpo" else "JPEG"
    data = encode(img, image_format, quality=95, **params[kind])
    assert len(data) > 4 * ImageFile.MAXBLOCK and Image.open(io.BytesIO(data)).format == image_format
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    reads = []

    def counted(img):  # the decoded image's own load_read: JpegImageFile.load_read itself is every thread's
        def load_read(read_bytes):
            chunk = JpegImagePlugin.JpegImageFile.load_read(img, read_bytes)
            reads.append(len(chunk))
            return chunk

        img.load_read = load_read
        return img

    monkeypatch.setattr(inference, "Image", names_of(Image, open=lambda *a, **kw: counted(Image.open(*a, **kw))))
    decoded = inference.decode_image(data)
    assert len(reads) == 1 and reads[0] > 4 * ImageFile.MAXBLOCK
    assert np.array_equal(np.asarray(decoded), expected)


def test_an_mpo_of_many_scans_is_refused_as_a_jpeg_is(inference, classifier):
    # Pillow names a JPEG with an MPF block (phones write them) MPO, and libjpeg decodes its first picture's scans.
    at_limit = many_scans_mpo(inference.MAX_JPEG_SCANS)
    assert Image.open(io.BytesIO(at_limit)).format == "MPO"
    assert classify(inference, classifier, at_limit)["predictions"]
    with pytest.raises(inference.InvalidImageError, match="scans") as caught:
        inference.input_fn(many_scans_mpo(inference.MAX_JPEG_SCANS + 1), "image/jpeg")
    assert caught.value.status_code == 400


def test_a_png_of_many_colour_profiles_is_refused_before_pillow_inflates_them(inference, classifier):
    """Pillow inflates every iCCP chunk (up to 1 MB each) as it opens a PNG: the 3,900 that fit under the proxy's
    4 MiB took 9 s of CPU for a 1x1 image, past the proxy's 10 s read timeout on a slower CPU. The format allows one,
    which is read as before."""
    one = png_with_colour_profiles(1)
    assert Image.open(io.BytesIO(one)).info["icc_profile"] == b"\x00" * (1 << 20)
    assert classify(inference, classifier, one, "image/png")["predictions"]
    flood = png_with_colour_profiles(3_900)
    assert len(flood) <= 4 * 1024 * 1024  # what the proxy passes on
    for data in (png_with_colour_profiles(2, inflated=64), flood):
        with pytest.raises(inference.InvalidImageError, match="colour profile") as caught:
            inference.input_fn(data, "image/png")
        assert caught.value.status_code == 400


def test_icc_chunk_bytes_that_are_not_chunks_do_not_count(inference, classifier):
    # The quick byte count sends a file to the chunk walk, which counts only chunks Pillow reads.
    text = PngImagePlugin.PngInfo()
    text.add_text("comment", "iCCP iCCP iCCP")
    in_text = encode(Image.new("RGB", (8, 8), (200, 120, 40)), "PNG", pnginfo=text, icc_profile=b"\x00" * 128)
    after_iend = png_with_colour_profiles(1, inflated=64, after_iend=3)
    for data in (in_text, after_iend):
        assert data.count(b"iCCP") > 1 and inference.png_chunk_count(data, b"iCCP", 5) == 1
        assert not inference.too_many_colour_profiles(data)
        assert classify(inference, classifier, data, "image/png")["predictions"]
    assert inference.png_chunk_count(png_with_colour_profiles(9, inflated=64), b"iCCP", 2) == 3  # stops past the limit
    assert inference.png_chunk_count(png_with_colour_profiles(2, inflated=64)[:60], b"iCCP", 5) == 1  # cut short
    # A chunk's length and type that end the file are read by Pillow all the same: the chunk counts.
    assert inference.png_chunk_count(inference.PNG_SIGNATURE + bytes(4) + b"iCCP", b"iCCP", 5) == 1


def test_only_a_png_is_walked_for_colour_profiles(inference, classifier):
    # A JPEG's bytes read from offset 8 as PNG chunks may name two iCCP chunks (here a comment right after SOI):
    # a JPEG holds no iCCP chunk, and it is served.
    chunk = bytes(4) + b"iCCP" + b"crc!"  # a PNG chunk of no data: length, type, CRC
    comment = b"xx" + chunk * 2
    data = with_jpeg_comment(photo_bytes("coffee.jpg"), comment)
    assert inference.png_chunk_count(data, b"iCCP", 5) == 2 and inference.too_many_colour_profiles(data)
    assert top1(classify(inference, classifier, data)) == "espresso"


def test_json_base64_may_hold_spaces_tabs_and_line_breaks(inference, classifier):
    """As in MIME (76 columns) and `base64` CLI output; the proxy tolerates the same, so neither refuses the other's."""
    b64 = base64.b64encode(photo_bytes("coffee.jpg")).decode()
    chunks = [b64[i : i + 76] for i in range(0, len(b64), 76)]
    wrapped = "".join(chunk + ("\r\n", " ", "\t", "\n")[n % 4] for n, chunk in enumerate(chunks))
    result = classify(inference, classifier, json.dumps({"image": wrapped, "top_k": 1}), "application/json")
    assert top1(result) == "espresso"


def test_predictions_come_most_probable_first(inference, classifier):
    result = classify(inference, classifier, photo_bytes("coffee.jpg"), accept="application/json;top_k=20")
    probs = [p["prob"] for p in result["predictions"]]
    assert len(probs) == 20 and probs == sorted(probs, reverse=True)
    # numpy's argpartition happens to return a k <= 20 prefix in order; its order is undefined (and out of order
    # for a large k here), so the sort after it is what keeps the answer most probable first.
    scores = np.random.default_rng(0).permutation(np.linspace(0.0, 1.0, 1000))
    labels = [f"c{i}" for i in range(1000)]
    top = inference.top_k_predictions(scores, labels, 500)
    assert [p["prob"] for p in top] == sorted((p["prob"] for p in top), reverse=True)
    assert top[0]["label"] == labels[int(np.argmax(scores))]


def test_a_top_k_above_the_number_of_classes_answers_every_class(inference):
    # A model of 3 classes asked for its top 20: numpy's argpartition raised for a k past the end (a 500).
    top = inference.top_k_predictions(np.array([0.2, 0.5, 0.3], np.float32), ["a", "b", "c"], 20)
    assert [p["label"] for p in top] == ["b", "c", "a"]
