"""TensorFlow's (and LiteRT's) start-up log lines are off by default (edge_dfd.core.tfquiet); EDGE_DFD_DEBUG=1 brings
them back. Each case runs in a fresh interpreter: the lines are printed once, while the libraries load."""

import os
import subprocess
import sys

import pytest

from edge_dfd.core.tfquiet import TF_NOISE, filtered_stderr


def _python(code: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGE_DFD_DEBUG")}
    res = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stderr


def test_filter_keeps_other_lines(capfd):
    with filtered_stderr(("noise",)):
        os.write(2, b"a noise line\nkept line\n")
    assert capfd.readouterr().err == "kept line\n"


@pytest.mark.slow
def test_tensorflow_import_is_quiet_and_debug_brings_it_back():
    pytest.importorskip("tensorflow")
    code = "from edge_dfd.core import tfquiet; tfquiet.install(); import keras; print('after import', flush=True)"
    quiet = _python(code)
    noisy = _python(code, EDGE_DFD_DEBUG="1")
    assert not [n for n in TF_NOISE if n in quiet], quiet
    if not [n for n in TF_NOISE if n in noisy]:
        pytest.skip("this TensorFlow build prints no start-up log lines to silence")
    assert len(noisy) > len(quiet)


def test_litert_delegate_line_is_quiet():
    pytest.importorskip("ai_edge_litert")
    code = "import edge_dfd; edge_dfd.load_model('default', format='tflite-fp32')"
    assert "XNNPACK delegate" not in _python(code)
    assert "XNNPACK delegate" in _python(code, EDGE_DFD_DEBUG="1")
