"""Re-run tools/gen_layouts.sh into a temporary directory and check that the
committed lib/python/layouts/pyXY.c tables are exactly what the installed headers
give today. A version whose headers are not installed here is skipped."""
import glob
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = os.environ.get("PYENV_ROOT", "/root/.pyenv")
VERSIONS = ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]


def headers_installed(mm):
    pats = [f"{PYENV}/versions/{mm}.*/include/python{mm}/Python.h",
            f"{PYENV}/versions/{mm}.*/include/python{mm}m/Python.h"]
    return any(glob.glob(p) for p in pats)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("layouts")
    proc = subprocess.run([os.path.join(ROOT, "tools", "gen_layouts.sh"), str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("mm", VERSIONS)
def test_committed_table_matches_headers(generated, mm):
    if not headers_installed(mm):
        pytest.skip(f"Python {mm} headers not installed")
    name = "py" + mm.replace(".", "") + ".c"
    fresh = (generated / name).read_text()
    with open(os.path.join(ROOT, "lib", "python", "layouts", name)) as f:
        committed = f.read()
    assert fresh == committed, f"lib/python/layouts/{name} is stale: rerun tools/gen_layouts.sh"


@pytest.mark.parametrize("mm", VERSIONS)
def test_table_is_complete(mm):
    """Every hm_pylayout field is written by the generator (no silent 0s)."""
    name = "py" + mm.replace(".", "") + ".c"
    path = os.path.join(ROOT, "lib", "python", "layouts", name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not committed")
    with open(os.path.join(ROOT, "lib", "python", "pylayout.h")) as f:
        header = f.read()
    body = header[header.index("typedef struct hm_pylayout {"):header.index("} hm_pylayout;")]
    fields = []
    for line in body.splitlines()[1:]:
        code = line.split("/*")[0].strip()
        if code.startswith("int "):
            fields += [x.strip() for x in code[4:].rstrip(";").split(",")]
    with open(path) as f:
        table = f.read()
    missing = [x for x in fields if f"\t.{x} = " not in table]
    assert not missing, f"{name} lacks {missing}"
