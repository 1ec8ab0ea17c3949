"""`make install` / `make uninstall`, the man pages and the shell completions.

The tree is installed with DESTDIR into a temporary directory (PREFIX=/usr)
from the build directory of the binary under test (HOMURA_BIN), without
rebuilding it. The installed binary runs; every man page renders with
`man --warnings` (or groff -ww) without a warning; every subcommand has a
page, and every option that a subcommand's --help prints is in its page and
in both completion scripts, so that they cannot drift apart; bash completes
`homura rec<TAB>` to `record` and `-p <TAB>` to the PIDs of Python
processes."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HOMURA, REPO, homura, program

BUILD = Path(HOMURA).parent


def subcommands():
    """The commands `homura --help` lists."""
    r = homura("--help")
    assert r.rc == 0, r.describe()
    text = r.stdout.split("commands:", 1)[1].split("\n\n", 1)[0]
    cmds = [l.split()[0] for l in text.splitlines() if l.strip()]
    assert "record" in cmds and "server" in cmds, r.stdout
    return cmds


def help_options(cmd):
    """Every -x / --long option a subcommand's --help mentions."""
    r = homura(cmd, "--help")
    assert r.rc == 0, r.describe()
    text = r.stdout
    longs = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    shorts = set(re.findall(r"(?<![\w-])(-[a-zA-Z])(?=[ ,\n])", text))
    return longs | shorts


def man_text(path):
    """A man page's source with roff's escapes for '-' and fonts undone."""
    src = Path(path).read_text(encoding="utf-8")
    src = re.sub(r"\\f[BIRP]", "", src)
    return src.replace("\\-", "-")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    if not (REPO / "Makefile").exists() or shutil.which("make") is None:
        pytest.skip("no Makefile or make")
    # -o: take the binary under test as it is, never rebuild it here.
    cmd = ["make", "-s", "-C", str(REPO), "install", "DESTDIR=%s" % dest, "PREFIX=/usr",
           "BUILD=%s" % BUILD, "-o", "%s/homura" % BUILD]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return dest


def test_install_files(installed):
    usr = installed / "usr"
    binary = usr / "bin" / "homura"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert (usr / "share/bash-completion/completions/homura").is_file()
    assert (usr / "share/zsh/vendor-completions/_homura").is_file()
    assert (usr / "share/doc/homura/README.md").is_file()
    assert (usr / "share/doc/homura/agent.md").is_file()
    # the allocation sampler of `homura run --memory`, where homura looks for it
    assert (usr / "lib/homura/libhomura-alloc.so").is_file()
    pages = {p.name for p in (usr / "share/man/man1").iterdir()}
    want = {"homura.1"} | {"homura-%s.1" % c for c in subcommands()}
    assert want <= pages, "missing man pages: %s" % (want - pages)
    # The installed binary is the one under test and runs from there.
    for flag in ("--version", "-V"):
        got = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=20)
        assert got.returncode == 0 and re.match(r"^homura \d+\.\d+\.\d+$", got.stdout.strip())
        assert got.stdout == homura(flag).stdout


def test_uninstall(tmp_path):
    args = ["make", "-s", "-C", str(REPO), "DESTDIR=%s" % tmp_path, "PREFIX=/opt/h",
            "BUILD=%s" % BUILD, "-o", "%s/homura" % BUILD]
    p = subprocess.run(args + ["install"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    root = tmp_path / "opt/h"
    assert (root / "bin/homura").is_file()
    # Outside /usr zsh's default path is site-functions.
    assert (root / "share/zsh/site-functions/_homura").is_file()
    p = subprocess.run(args + ["uninstall"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    left = [str(f) for f in root.rglob("*") if f.is_file()]
    assert left == [], left


def render_warnings(page):
    """What man (or groff) says while rendering page, warnings only."""
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    if shutil.which("man"):
        p = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                           text=True, timeout=60, env=env)
        assert p.returncode == 0, p.stderr
        text = re.sub(".\x08", "", p.stdout)     # overstrike bold/underline
        assert "NAME" in text and "OPTIONS" in text, text
        return p.stderr
    if shutil.which("groff"):
        p = subprocess.run(["groff", "-ww", "-z", "-man", str(page)], capture_output=True,
                           text=True, timeout=60)
        return p.stderr + ("" if p.returncode == 0 else "exit %d" % p.returncode)
    pytest.skip("neither man nor groff is installed (scripts/install-deps.sh)")


def test_man_pages_render(installed):
    pages = sorted((installed / "usr/share/man/man1").glob("*.1"))
    assert pages
    for page in pages:
        warn = render_warnings(page)
        assert warn.strip() == "", "%s: %s" % (page.name, warn)


@pytest.mark.parametrize("cmd", ["record", "run", "top", "dump", "convert", "diff", "agent", "server"])
def test_man_page_has_every_option(cmd):
    """Each option of `homura CMD --help` is documented in homura-CMD.1."""
    assert cmd in subcommands()
    page = REPO / "man" / ("homura-%s.1" % cmd)
    assert page.is_file(), "no man page for %s" % cmd
    text = man_text(page)
    missing = sorted(o for o in help_options(cmd)
                     if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), text))
    assert not missing, "%s: options in --help but not in %s: %s" % (cmd, page.name, missing)


def test_every_subcommand_has_a_page():
    for cmd in subcommands():
        assert (REPO / "man" / ("homura-%s.1" % cmd)).is_file(), cmd
        assert re.search(r"\.BR homura\\-%s \(1\)" % cmd, (REPO / "man/homura.1").read_text()), \
            "homura.1 does not point to homura-%s(1)" % cmd


def bash_complete(script, words, env=None):
    """COMPREPLY of the homura completion for words (the last is completed)."""
    quoted = " ".join("'%s'" % w.replace("'", "'\\''") for w in words)
    prog = ('source "$1" || exit 3; complete -p homura || exit 4; COMP_WORDS=(%s); '
            'COMP_CWORD=%d; COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; _homura; '
            'printf "%%s\\n" "${COMPREPLY[@]}"' % (quoted, len(words) - 1))
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog, "bash", str(script)],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines and "-F _homura" in lines[0], p.stdout
    return [l for l in lines[1:] if l]


def test_bash_completion(installed, spawn, default_py):
    script = installed / "usr/share/bash-completion/completions/homura"
    assert bash_complete(script, ["homura", "rec"]) == ["record"]
    assert sorted(bash_complete(script, ["homura", "d"])) == ["diff", "dump"]
    assert bash_complete(script, ["homura", "help", "ser"]) == ["server"]
    assert sorted(bash_complete(script, ["homura", "record", "--nonb"])) == ["--nonblocking"]
    assert bash_complete(script, ["homura", "record", "-f", "chr"]) == ["chrometrace"]
    assert sorted(bash_complete(script, ["homura", "top", "-S", "own"])) == ["own", "owntime"]
    # -p offers the PIDs of Python processes, this one among them.
    t = spawn([default_py.path, program("busy.py"), 30])
    other = subprocess.Popen(["sleep", "30"])
    try:
        pids = bash_complete(script, ["homura", "record", "-p", ""])
    finally:
        other.kill()
        other.wait()
    assert str(t.pid) in pids and str(other.pid) not in pids, pids
    assert all(p.isdigit() for p in pids), pids
    assert str(t.pid) in bash_complete(script, ["homura", "dump", "--pid", str(t.pid)[:-1]])


@pytest.mark.parametrize("cmd", ["record", "run", "top", "dump", "convert", "diff", "agent", "server"])
def test_bash_completion_options_match_help(installed, cmd):
    script = installed / "usr/share/bash-completion/completions/homura"
    offered = set(bash_complete(script, ["homura", cmd, "-"]))
    assert help_options(cmd) <= offered, help_options(cmd) - offered


@pytest.mark.parametrize("cmd", ["record", "run", "top", "dump", "convert", "diff", "agent", "server"])
def test_zsh_completion_options_match_help(cmd):
    """Every option of --help is in the zsh function of its subcommand, and
    the script parses (when zsh is installed)."""
    src = (REPO / "completions/_homura").read_text()
    fn = "_homura_convert_like" if cmd in ("convert", "diff") else "_homura_" + cmd
    body = src.split(fn + "() {", 1)[1].split("\n}\n", 1)[0]
    specs = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][a-z0-9-]*)(?=[\[\}',])", body))
    missing = help_options(cmd) - specs
    assert not missing, "%s: not in _homura: %s" % (cmd, sorted(missing))
    if shutil.which("zsh"):
        p = subprocess.run(["zsh", "-n", str(REPO / "completions/_homura")],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr


def _stage_packages(dockerfile, stage):
    """The packages `apt-get install` installs in a stage (0 = first)."""
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    text = stages[stage].replace("\\\n", " ")
    m = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", text)
    assert m, stages[stage]
    return set(m.group(1).split())


def test_dockerfile_matches_deploy_and_binary():
    """No docker daemon here, so the Dockerfile is checked for consistency:
    it builds the image the Kubernetes manifest runs (tag = the version),
    both stages start from debian:12-slim, the build stage installs only
    packages scripts/install-deps.sh knows, and the run stage has the
    package of every shared library the binary links."""
    dockerfile = (REPO / "Dockerfile").read_text()
    version = homura("--version").stdout.split()[1]
    images = re.findall(r"image:\s*(\S+/homura:\S+)",
                        (REPO / "docs/deploy/kubernetes-sidecar.yaml").read_text())
    assert images == ["registry.example.com/homura:%s" % version], images
    assert images[0] in dockerfile
    assert re.findall(r"^FROM (\S+)", dockerfile, flags=re.M) == ["debian:12-slim"] * 2
    assert re.search(r'^ENTRYPOINT \["homura"\]$', dockerfile, flags=re.M)
    assert "make install DESTDIR=/out PREFIX=/usr/local" in dockerfile
    deps = (REPO / "scripts/install-deps.sh").read_text()
    for pkg in _stage_packages(dockerfile, 0):
        assert re.search(r"[ (]%s[ )\n]" % re.escape(pkg), deps), "%s not in install-deps.sh" % pkg
    runtime = _stage_packages(dockerfile, 1)
    if not shutil.which("dpkg") or not shutil.which("readelf"):
        pytest.skip("dpkg or readelf missing: cannot map libraries to packages")
    dyn = subprocess.run(["readelf", "-d", HOMURA], capture_output=True, text=True).stdout
    for lib in re.findall(r"\(NEEDED\).*\[(.+)\]", dyn):
        if re.match(r"lib(c|m|pthread|dl|rt|asan|ubsan|gcc_s|stdc\+\+)\.so", lib):
            continue        # libc6 is in every image; sanitizer builds add their own
        own = subprocess.run(["dpkg", "-S", "*/%s" % lib], capture_output=True, text=True)
        pkgs = {l.split(":")[0] for l in own.stdout.splitlines()}
        assert pkgs, "no Debian package owns %s" % lib
        # libtinfo6 comes with libncursesw6 (and is essential in Debian).
        assert pkgs & (runtime | {"libtinfo6"}), "%s (%s) not in the run stage" % (lib, pkgs)
