"""The artifact's vendored cp312 ONNX Runtime on a real Python 3.12, as the PyTorch DLC runs it.

The TorchServe tests run on our Python 3.11 venv, where inference.py skips code/vendor/cp312. This test closes
that gap: a bare Python 3.12 environment with only numpy and Pillow (what the DLC has besides torch) serves the
extracted artifact through code/inference.py, and must do it with the vendored onnxruntime, not TorchScript, and
give the four photos the very answers this venv gives. The DLC installs numpy and Pillow unpinned, so whichever was
current when AWS built the image: the test runs with today's releases and with numpy 1.26.4 (the last 1.x) and
Pillow 10.3.0, both released about a year before the first 2.6 image (early 2025).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from local.runtime import extract_all
from tests.ci import bare_venv, skip_or_fail

pytestmark = [pytest.mark.container, pytest.mark.other_python, pytest.mark.slow]

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1] + "/code")
import inference, numpy, PIL
model = inference.model_fn(sys.argv[1])
results = {}
for path in sys.argv[2:]:
    body = open(path, "rb").read()
    prediction = inference.predict_fn(inference.input_fn(body, "image/jpeg"), model)
    results[path] = json.loads(inference.output_fn(prediction, "application/json")[0])["predictions"]
print(json.dumps({"backend": model.backend, "torch_imported": "torch" in sys.modules, "results": results,
                  "versions": [numpy.__version__, PIL.__version__]}))
"""


PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "images"


@pytest.mark.parametrize(
    "packages", [("numpy", "Pillow"), ("numpy==1.26.4", "Pillow==10.3.0")], ids=["current", "numpy1-pillow10"]
)
def test_vendored_onnxruntime_serves_on_python_312(packages, artifact, inference, classifier, tmp_path):
    with tarfile.open(artifact) as tar:
        if not any(name.startswith("code/vendor/cp312/onnxruntime/") for name in tar.getnames()):
            skip_or_fail(
                "this artifact has no vendored onnxruntime (offline build)",
                "CI must vendor it (make model downloads the cp312 wheel)",
            )
        extract_all(tar, tmp_path / "model")
    venv = bare_venv("3.12", tmp_path / "py312", packages, "check the vendored cp312 onnxruntime with")
    photos = sorted(map(str, PHOTOS.glob("*.jpg")))
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCRIPT, str(tmp_path / "model"), *photos],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"]},
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["backend"].startswith("onnxruntime"), report
    assert report["torch_imported"] is False
    if "==" in packages[0]:
        assert report["versions"] == [p.split("==")[1] for p in packages]
    assert len(report["results"]) == 4
    for photo, got in report["results"].items():
        # What this venv's Python 3.11, numpy and Pillow answer, and every other test checks: same labels, same order,
        # probabilities to the 6 decimals output_fn gives (up to one unit in the last).
        prediction = inference.predict_fn(inference.input_fn(Path(photo).read_bytes(), inference.JPEG), classifier)
        want = json.loads(inference.output_fn(prediction, inference.JSON)[0])["predictions"]
        assert [p["label"] for p in got] == [p["label"] for p in want], photo
        # 1e-6 as decimals: 0.123457 - 0.123456 is 1.000000000001e-06 in floats.
        assert all(abs(g["prob"] - w["prob"]) < 1.5e-6 for g, w in zip(got, want, strict=True)), (photo, got, want)
