"""Every notebook in colab/ runs top to bottom on a CPU kernel."""

import pathlib

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the test extra (nbformat)")
nbclient = pytest.importorskip("nbclient",
                               reason="notebook tests need the test extra (nbclient, ipykernel)")

pytestmark = pytest.mark.slow  # The whole module (see pyproject.toml).

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "colab").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
  notebook = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()
  errors = [
      o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
      if o.output_type == "error"
  ]
  assert not errors
