"""Every notebook in notebooks/ runs from a clean kernel (STYLE §8); a failing cell fails the suite.

The kernel is this test environment's Python: a kernelspec pointing at
`sys.executable` is installed into a temporary directory first on
`JUPYTER_PATH`, so a `python3` kernel of another environment can never be
picked up. Outputs are not written back: the stored notebook is executed by
hand (see notebooks/README.md) so that its figures show on GitHub.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
CHECK_KERNEL = f"import sys; assert sys.executable == {sys.executable!r}, sys.executable"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> str:
    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name="policysim-test", prefix=str(prefix))  # uses sys.executable
    monkeypatch_module.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "policysim-test"


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_from_a_clean_kernel(path: Path, kernel_name: str, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(CHECK_KERNEL))
    client = NotebookClient(notebook, timeout=300, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell


def test_there_is_a_notebook() -> None:
    assert [p.name for p in NOTEBOOKS] == ["what_if.ipynb"]
