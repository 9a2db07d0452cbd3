"""The README's Python example runs as written."""

import pathlib
import re
import subprocess
import sys

from conftest import REPO


def test_the_readme_example_runs(tmp_path):
    text = (REPO / "README.md").read_text()
    section = text.split("## Python", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ROC-AUC ") and lines[-1] == "(2, 3)", out.stdout
    assert (tmp_path / "runs" / "python-example" / "summary.json").is_file()
