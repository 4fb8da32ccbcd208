"""`pip install .` into a fresh virtual environment gives `snap` and `snapstore`.

A real PEP 517 build through maturin, offline: the build backend comes from
the wheelhouse `.ci/run` fills once (SNAP_PY_WHEELHOUSE), and maturin
builds with cargo's dev profile (MATURIN_PEP517_ARGS="--profile dev") into
the same CARGO_TARGET_DIR as `cargo test`, so nothing is compiled twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_gives_snap_on_path_and_the_package(tmp_path: Path) -> None:
    wheelhouse = os.environ.get("SNAP_PY_WHEELHOUSE")
    if not wheelhouse:
        pytest.skip("SNAP_PY_WHEELHOUSE (a directory holding the maturin wheel) is not set; .ci/run sets it")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SNAP_BIN", "PYTHONPATH")}
    env.setdefault("MATURIN_PEP517_ARGS", "--profile dev")
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-index", "--find-links", wheelhouse, str(ROOT)],
        check=True, env=env, capture_output=True,
    )
    version = subprocess.run(
        ["snap", "--version"], check=True, capture_output=True, text=True,
        env={**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"},
    ).stdout
    assert version.startswith("snap ")
    # Outside the checkout, so the import is the installed package.
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import snapstore; print(snapstore.find_snap_bin())"],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path,
    ).stdout.strip()
    assert found == str(venv / "bin" / "snap")
