"""The command line as a shell pipeline sees it."""
import subprocess
import sys

import pytest


@pytest.mark.io
def test_a_reader_that_leaves_early_gets_no_traceback():
    """`tfbot schema | head -c0`: the reader is gone before tfbot writes (it takes a second to start)."""
    proc = subprocess.Popen([sys.executable, "-m", "bot", "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.decode()) == (0, "")
