"""The serving stack installed under a path that is not plain ASCII, as in a checkout under /home/józef: the JVM
reads what the toolkit names by path (its handler, in a .properties file) and its own class path."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.container.conftest import endpoint
from tests.imagegen import CAT_LABELS, photo_bytes

pytestmark = [pytest.mark.container, pytest.mark.slow]


# LC_ALL=C: Python takes the C locale for UTF-8 (PEP 540), and the JVM for ASCII; so does a locale this machine has
# not (xx_XX.UTF-8): both fall back to the C locale.
@pytest.mark.parametrize("lc_all", ["C.UTF-8", "C", "xx_XX.UTF-8"])
def test_a_toolkit_and_torchserve_under_a_non_ascii_path_serve(artifact, tmp_path, monkeypatch, lc_all):
    # The toolkit and TorchServe found through a folder named as such a checkout's venv may be, and nothing else
    # moved: links keep the real packages, and Python names their files by the path it found them through.
    # Its UTF-8 bytes, as a checkout has them, whatever the test's own locale (en_US.ISO-8859-1 has no δ).
    site = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), "dir with space/Åsa-δ".encode())))
    site.mkdir(parents=True)
    for module in ("sagemaker_pytorch_serving_container", "ts"):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        (site / module).symlink_to(Path(spec.origin).parent, target_is_directory=True)
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("LC_ALL", lc_all)
    with endpoint(artifact) as ep:
        ep.wait_ready()
        status, _, body = ep.invoke(photo_bytes("chelsea.jpg"), "image/jpeg")
    assert status == 200, body[:300]
    assert b'"predictions"' in body and any(label.encode() in body for label in CAT_LABELS)
