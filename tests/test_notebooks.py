"""Every notebook runs top to bottom, headless, on small parameters (BITSIM_NB_SMALL=1).

The notebooks are kept as jupytext percent-format ``notebooks/*.py`` (the diffable source
of truth); here each is converted to ipynb in memory and executed with nbclient.
"""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.py"))


def test_the_numbered_notebooks_exist_in_order():
    stems = [p.stem for p in NOTEBOOKS]
    assert stems[:4] == ["01-datapaths", "02-gpu-kernels", "03-design-space", "04-validation"]
    assert [s[:2] for s in stems] == [f"{i:02d}" for i in range(1, len(stems) + 1)]   # no gap, no duplicate


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless_on_small_parameters(path, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("BITSIM_NB_SMALL", "1")
    monkeypatch.setenv("BITSIM_NB_OUT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the figures
    nb = jupytext.read(path)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), "no parameters cell"
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # at least one figure was drawn
    assert any(o.get("data", {}).get("image/png") for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


@pytest.mark.parametrize("stem", ["01-datapaths", "03-design-space", "04-validation"])
def test_a_new_user_meets_the_studys_main_model_by_default(stem, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    monkeypatch.delenv("BITSIM_NB_SMALL", raising=False)
    nb = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params: dict = {}
    exec(cell.source, params)          # the parameters cell only sets knobs
    assert not params["SMALL"]
    assert params.get("PRESET", (params.get("MODELS") or [None])[0]) == "7b"
