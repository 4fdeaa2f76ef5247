"""The code in the READMEs and tutorials runs, and their shown outputs are what microad prints."""

import doctest
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", ["docs/tutorial.md", "docs/tutoriel.md", "README.md",
                                  "README.fr.md"])
def test_tutorial_code_runs(page, tmp_path, monkeypatch):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed; the examples render diagrams")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for index, block in enumerate(BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))):
        if block.lstrip().startswith(">>>"):
            test = parser.get_doctest(block, namespace, f"{page} block {index}", page, 0)
            result = runner.run(test, clear_globs=False)
            assert result.failed == 0, f"{page} block {index} printed something else"
        else:
            exec(compile(block, f"{page} block {index}", "exec"), namespace)
    assert "loss" in namespace
    assert namespace["loss"].grad is not None
