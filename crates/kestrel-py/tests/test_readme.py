"""The README's Python example runs as written."""

import os
import pathlib
import re
import subprocess
import sys

import kestrel

from conftest import REPO


def test_the_readme_example_runs(tmp_path):
    text = (REPO / "README.md").read_text()
    section = text.split("## Python", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    # The package this test imported, wherever it was found (a relative PYTHONPATH would not
    # survive the change of folder).
    here = str(pathlib.Path(kestrel.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ROC-AUC ") and lines[-1] == "(2, 3)", out.stdout
    assert (tmp_path / "runs" / "python-example" / "summary.json").is_file()
