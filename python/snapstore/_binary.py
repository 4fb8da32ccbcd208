"""Finding the `snap` binary that belongs to this package.

The wheel installs `snap` into the environment's scripts directory (the
`bin/` next to `python`), as uv and ruff do. `find_snap_bin()` looks where
`uv.find_uv_bin()` looks, in the same order.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

#: Environment variable naming the binary to use (tests, development
#: checkouts: `SNAP_BIN=target/debug/snap`). It wins over everything else.
BIN_ENV = "SNAP_BIN"

_EXE = "snap" + (sysconfig.get_config_var("EXE") or "")


def _user_scheme() -> str:
    if os.name == "nt":
        return "nt_user"
    if sys.platform == "darwin" and sys._framework:  # type: ignore[attr-defined]
        return "osx_framework_user"
    return "posix_user"


def find_snap_bin() -> str:
    """Return the path of the `snap` executable.

    Order: `$SNAP_BIN`; the scripts directory of this interpreter's
    environment; the user scheme's scripts directory (`pip install --user`);
    then `PATH`. Raises `FileNotFoundError` naming every place tried.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return os.path.abspath(override)
        raise FileNotFoundError(f"{BIN_ENV}={override} is not an executable file")
    tried = []
    for scripts in (sysconfig.get_path("scripts"), sysconfig.get_path("scripts", _user_scheme())):
        if not scripts:
            continue
        candidate = os.path.join(scripts, _EXE)
        tried.append(candidate)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(_EXE)
    if on_path:
        return on_path
    raise FileNotFoundError(
        "cannot find the snap binary; tried "
        + ", ".join(tried)
        + " and PATH. Install the snapstore wheel (pip install snapstore) "
        f"or set {BIN_ENV} to the binary"
    )
