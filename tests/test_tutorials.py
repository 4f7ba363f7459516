"""The tutorials (tutorials/NN_name.py, jupytext percent format) run top to bottom and make their figures.

Each tutorial is converted to a notebook and executed by a Jupyter kernel (nbclient) in a temporary
folder, as a reader would run it; any error in any cell fails the test, and so does a figure file
that is missing or not also shown in the notebook. Together they take a few minutes on 2 cores,
so they are marked ``slow`` (``.ci/docs`` runs them); the listing check is fast.
"""

from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"

#: The figure files each tutorial writes into its working folder (and shows).
FIGURES = {
    "01_tripartite_synapse": ("process_models.png", "parameter_change.png"),
    "02_attention_head": ("head_raster.png", "decoded_output.png", "astrocyte_blocked.png"),
    "03_astrocyte_parameters": ("tau_ca_sweep.png",),
    "04_minilm_head": ("attention_maps.png", "normaliser.png"),
    "05_spiking_transformer": ("attention_maps.png", "layer_error.png", "bill.png", "curated_layer_error.png",
                               "curated_bill.png"),
    "06_generate_on_spikes": ("memory_attention.png", "memory_normaliser.png"),
}
#: Tutorials that need all-MiniLM-L6-v2 (skipped, like tests/test_minilm.py, where it is not installed).
NEEDS_MINILM = {"04_minilm_head", "05_spiking_transformer"}


def run_tutorial(script: Path, folder: Path):
    """Execute a tutorial script as a notebook with ``folder`` as its working folder; returns the
    executed notebook. nbclient raises ``CellExecutionError`` on the first cell that fails."""
    import jupytext
    import nbclient

    notebook = jupytext.read(script)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def shown_images(notebook) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))


def test_every_tutorial_is_listed_with_its_figures():
    assert sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py")) == sorted(FIGURES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_tutorial_runs_and_makes_its_figures(name, tmp_path, request):
    if name in NEEDS_MINILM:
        request.getfixturevalue("model")          # skips without the model
    notebook = run_tutorial(TUTORIALS / f"{name}.py", tmp_path)
    for figure in FIGURES[name]:
        path = tmp_path / figure
        assert path.is_file() and path.stat().st_size > 1000, f"{name} did not write {figure}"
    assert shown_images(notebook) >= len(FIGURES[name]), f"{name} does not show all its figures"


def test_a_failing_cell_fails_the_run(tmp_path):
    """The check itself: an error in a cell stops the run with the cell's error."""
    import nbclient

    script = tmp_path / "99_broken.py"
    script.write_text("# %%\nx = 1\n\n# %%\nraise RuntimeError('broken tutorial')\n")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="broken tutorial"):
        run_tutorial(script, tmp_path)
