"""The artifact's vendored cp312 ONNX Runtime on a real Python 3.12, as the PyTorch DLC runs it.

The TorchServe tests run on our Python 3.11 venv, where inference.py skips code/vendor/cp312. This test closes
that gap: a bare Python 3.12 environment with only numpy and Pillow (what the DLC has besides torch) serves the
extracted artifact through code/inference.py, and must do it with the vendored onnxruntime, not TorchScript.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.ci import find_python, skip_or_fail

pytestmark = [pytest.mark.container, pytest.mark.slow]

SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1] + "/code")
import inference
model = inference.model_fn(sys.argv[1])
body = open(sys.argv[2], "rb").read()
out, content_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, "image/jpeg"), model),
                                        "application/json")
print(json.dumps({"backend": model.backend, "torch_imported": "torch" in sys.modules, "result": json.loads(out)}))
"""


def test_vendored_onnxruntime_serves_on_python_312(artifact, tmp_path):
    with tarfile.open(artifact) as tar:
        if not any(name.startswith("code/vendor/cp312/onnxruntime/") for name in tar.getnames()):
            skip_or_fail(
                "this artifact has no vendored onnxruntime (offline build)",
                "CI must vendor it (make model downloads the cp312 wheel)",
            )
        tar.extractall(tmp_path / "model", filter="data")
    interpreter = find_python("3.12")
    if interpreter is None:
        skip_or_fail("no Python 3.12 on this machine", "CI must bring one to check the vendored cp312 onnxruntime with")
    venv = tmp_path / "py312"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "numpy", "Pillow"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        skip_or_fail(
            f"cannot install numpy and Pillow for Python 3.12: {install.stderr.strip()[-300:]}",
            "CI must reach a package index",
        )
    photo = Path(__file__).resolve().parents[1] / "fixtures" / "images" / "chelsea.jpg"
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCRIPT, str(tmp_path / "model"), str(photo)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"]},
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["backend"].startswith("onnxruntime"), report
    assert report["torch_imported"] is False
    assert report["result"]["predictions"][0]["label"] in {"Egyptian cat", "tabby", "tiger cat"}
