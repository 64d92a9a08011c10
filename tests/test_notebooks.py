"""Every notebook in notebooks/ executes top to bottom (small settings: BAYESOOF_QUICK=1).

Notebooks are jupytext files (MyST ``.md`` or percent ``.py``); each is converted with
jupytext and run with nbclient in a kernel started from this very interpreter (a kernel
spec is registered in a temporary JUPYTER_PATH, nothing is installed globally), with the
notebook's folder as working directory.  A failing cell fails the test and names the cell.
"""

import json
import os
import sys

import pytest

from bayesoof import testing as T

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = T.REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(
    p for p in NOTEBOOK_DIR.glob("*")
    if p.suffix in (".md", ".py") and p.name.lower() != "readme.md"
)
KERNEL = "bayesoof-test"
TIMEOUT = 600  # s per cell


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "uncertainty", "diagnostics"} <= names, names


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernel spec for this interpreter in a temporary JUPYTER_PATH, and BAYESOOF_QUICK=1."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bayesoof test kernel",
        "language": "python",
    }))
    old = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "BAYESOOF_QUICK", "MPLBACKEND")}
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(root)] + ([old["JUPYTER_PATH"]] if old["JUPYTER_PATH"] else []))
    os.environ["BAYESOOF_QUICK"] = "1"
    os.environ.pop("MPLBACKEND", None)  # notebooks use the inline backend
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, kernel_env):
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name}: a cell failed:\n{err}")
    # every code cell ran, and the notebook drew at least one figure
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code if c.source.strip())
    images = [o for c in code for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} shows no figure"
