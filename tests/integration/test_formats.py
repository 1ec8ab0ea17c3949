"""test_formats.py - homura convert / diff against independent consumers.

Drives build/homura (skipped when it is not built): pprof output read by
`go tool pprof`, OTLP output decoded by `protoc --decode` with homura's own
.proto files, round trips between every pair of formats, diffs, filters and
hostile input.
"""
import gzip
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOMURA = os.environ.get("HOMURA", os.path.join(ROOT, "build", "homura"))
PROTO = os.path.join(ROOT, "proto")
OTLP_REQ = "opentelemetry.proto.collector.profiles.v1development.ExportProfilesServiceRequest"
OTLP_FILE = "opentelemetry/proto/collector/profiles/v1development/profiles_service.proto"

pytestmark = pytest.mark.skipif(not os.access(HOMURA, os.X_OK),
                                reason="build/homura not built")

BEFORE = """\
main (app.py:3);work (app.py:10);compute (calc.py:5) 30
main (app.py:3);work (app.py:10);time.sleep 12
main (app.py:3);helper (/venv/lib/site-packages/lib.py:7) 8
main (app.py:3) 3
"""
AFTER = """\
main (app.py:3);work (app.py:10);compute (calc.py:5) 10
main (app.py:3);work (app.py:10);time.sleep 40
main (app.py:3);helper (/venv/lib/site-packages/lib.py:7) 8
main (app.py:3) 3
"""


def homura(*args, check=True):
    r = subprocess.run([HOMURA, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def parse_collapsed(text):
    out = {}
    for line in text.splitlines():
        if line.strip():
            stack, n = line.rsplit(" ", 1)
            out[stack] = out.get(stack, 0) + int(n)
    return out


@pytest.fixture
def before(tmp_path):
    p = tmp_path / "before.txt"
    p.write_text(BEFORE)
    return p


@pytest.fixture
def after(tmp_path):
    p = tmp_path / "after.txt"
    p.write_text(AFTER)
    return p


@pytest.mark.skipif(not shutil.which("go"), reason="go not installed")
def test_pprof_read_by_go_tool(tmp_path, before):
    out = tmp_path / "cpu.pb.gz"
    homura("convert", str(before), "-o", str(out))
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    r = subprocess.run(["go", "tool", "pprof", "-top", str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "warning" not in (r.stdout + r.stderr).lower()
    rows = [l.split() for l in r.stdout.splitlines() if re.match(r"\s+\d", l)]
    assert rows[0][0] == "30" and rows[0][-1] == "compute"
    assert "53 total" in r.stdout
    r = subprocess.run(["go", "tool", "pprof", "-traces", str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0
    assert re.search(r"12\s+time.sleep\s+work\s+main", r.stdout)


def test_otlp_protoc_decode(tmp_path, before):
    out = tmp_path / "cpu.otlp.pb"
    homura("convert", str(before), "-o", str(out))
    r = subprocess.run(["protoc", f"--proto_path={PROTO}", f"--decode={OTLP_REQ}", OTLP_FILE],
                       stdin=open(out, "rb"), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "stack_table" in text and "attribute_table" in text
    assert 'name: "homura"' in text
    assert len(re.findall(r"^    profiles {", text, re.M)) == 2
    assert '"profile.frame.type"' in text and '"cpython"' in text
    assert '"thread.id"' in text
    # the sample counts are all there
    vals = [int(v) for v in re.findall(r"values: (\d+)", text)]
    assert sum(vals) == 53


def test_otlp_json_mapping(tmp_path, before):
    import json
    out = tmp_path / "cpu.otlp.json"
    homura("convert", str(before), "-o", str(out))
    j = json.loads(out.read_text())
    prof = j["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][1]
    assert re.fullmatch(r"[0-9a-f]{32}", prof["profileId"])
    assert all(isinstance(v, str) for s in prof["samples"] for v in s["values"])
    assert j["dictionary"]["stringTable"][0] == ""
    assert "stackTable" in j["dictionary"]


FORMATS = ["collapsed", "speedscope", "pprof", "otlp", "otlp-json"]


@pytest.mark.parametrize("a", FORMATS)
@pytest.mark.parametrize("b", FORMATS)
def test_roundtrip_pairs(tmp_path, before, a, b):
    x = tmp_path / "x"
    y = tmp_path / "y"
    homura("convert", str(before), "-o", str(x), "-f", a)
    homura("convert", str(x), "-o", str(y), "-f", b)
    r = homura("convert", str(y), "-f", "collapsed")
    if "speedscope" in (a, b):
        # speedscope keeps weights, not counts, for data without times
        assert set(parse_collapsed(r.stdout)) == set(parse_collapsed(BEFORE))
    else:
        assert parse_collapsed(r.stdout) == parse_collapsed(BEFORE)


def test_pprof_otlp_pprof_identical(tmp_path, before):
    p1, o, p2 = tmp_path / "1.pb.gz", tmp_path / "x.otlp.pb", tmp_path / "2.pb.gz"
    homura("convert", str(before), "-o", str(p1))
    homura("convert", str(p1), "-o", str(o))
    homura("convert", str(o), "-o", str(p2))
    a = homura("convert", str(p1), "-f", "collapsed").stdout
    b = homura("convert", str(p2), "-f", "collapsed").stdout
    assert a == b


def test_svg_output(tmp_path, before):
    out = tmp_path / "f.svg"
    homura("convert", str(before), "-o", str(out))
    assert "<svg" in out.read_text()


def test_diff_collapsed_and_svg(tmp_path, before, after):
    r = homura("diff", str(before), str(after), "-f", "collapsed")
    d = parse_collapsed(r.stdout.replace("+", ""))
    scale = 61 / 53            # totals of AFTER and BEFORE
    assert d["main (app.py:3);work (app.py:10);time.sleep"] == 40 - round(12 * scale)
    assert d["main (app.py:3);work (app.py:10);compute (calc.py:5)"] == 10 - round(30 * scale)
    assert r.stdout.splitlines()[0].startswith("main (app.py:3);work (app.py:10);time.sleep +")
    svg = tmp_path / "d.svg"
    homura("diff", str(before), str(after), "-o", str(svg))
    text = svg.read_text()
    assert "<svg" in text and "time.sleep" in text
    assert "rgb(235," in text          # something grew (red)
    pb = tmp_path / "d.pb.gz"
    homura("diff", str(before), str(after), "-o", str(pb), "-f", "pprof")
    assert gzip.decompress(pb.read_bytes())


def test_diff_normalises_by_totals(tmp_path, before):
    doubled = tmp_path / "double.txt"
    doubled.write_text("".join(f"{l.rsplit(' ', 1)[0]} {2 * int(l.rsplit(' ', 1)[1])}\n"
                               for l in BEFORE.splitlines()))
    r = homura("diff", str(before), str(doubled), "-f", "collapsed")
    assert r.stdout.strip() == ""


def test_filters(tmp_path, before):
    r = homura("convert", str(before), "-f", "collapsed", "--focus", "compute")
    assert parse_collapsed(r.stdout) == {
        "main (app.py:3);work (app.py:10);compute (calc.py:5)": 30}
    r = homura("convert", str(before), "-f", "collapsed", "--hide", "^work")
    assert "main (app.py:3);compute (calc.py:5)" in parse_collapsed(r.stdout)
    r = homura("convert", str(before), "-f", "collapsed", "--drop-file", "site-packages")
    assert "helper" not in r.stdout
    assert parse_collapsed(r.stdout)["main (app.py:3)"] == 11
    r = homura("convert", str(before), "-f", "collapsed", "--focus", "(", check=False)
    assert r.returncode == 1 and "focus" in r.stderr


@pytest.mark.parametrize("data", [
    b"", b"\x1f\x8b\x08\x00\x00\x00", b"\x0a\x05\x08\x01", b"{\"profiles\": 3}",
    b"{" * 50000, b"main;work xyz\n", os.urandom(4096),
])
def test_hostile_input(tmp_path, data):
    f = tmp_path / "bad"
    f.write_bytes(data)
    r = homura("convert", str(f), "-o", str(tmp_path / "o.svg"), check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("homura: ") and r.stderr.count("\n") == 1


def test_gzip_bomb(tmp_path):
    f = tmp_path / "bomb.gz"
    f.write_bytes(gzip.compress(b"\0" * (300 << 20), 1))
    r = homura("convert", str(f), "-o", str(tmp_path / "o.svg"), check=False)
    assert r.returncode == 1 and "limit" in r.stderr


def test_missing_file(tmp_path):
    r = homura("convert", str(tmp_path / "nope"), "-o", str(tmp_path / "o.svg"), check=False)
    assert r.returncode == 1 and "nope" in r.stderr


@pytest.mark.skipif(not shutil.which("go"), reason="go not installed")
def test_reads_pprof_written_by_go(tmp_path, before):
    ours = tmp_path / "ours.pb.gz"
    theirs = tmp_path / "go.pb.gz"
    homura("convert", str(before), "-o", str(ours))
    with open(theirs, "wb") as f:
        r = subprocess.run(["go", "tool", "pprof", "-proto", str(ours)], stdout=f,
                           stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0
    r = homura("convert", str(theirs), "-f", "collapsed")
    assert parse_collapsed(r.stdout) == parse_collapsed(BEFORE)
