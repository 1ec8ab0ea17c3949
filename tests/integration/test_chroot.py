"""A target running under chroot: /proc/PID/maps shows its files relative to
homura's root, not the target's, so "/proc/PID/root" + path does not exist;
homura falls back to /proc/PID/map_files. The interpreter is bind-mounted
at another path (/opt/py) into a private mount namespace (unshare -m), so
none of its paths can be opened from here directly; the mounts vanish with
the namespace when the target exits."""
import os
import shutil
import subprocess

import pytest

from conftest import Collapsed, homura, program

SETUP = r"""
set -e
D=$1; PYROOT=$2; PROGS=$3; EXE=$4; shift 4
mount --make-rprivate /
mkdir -p "$D/usr" "$D/opt/py" "$D/prog" "$D/tmp"
for l in lib lib64 bin; do [ -e "/$l" ] && ln -s "usr/$l" "$D/$l"; done
mount --rbind /usr "$D/usr"
mount --bind "$PYROOT" "$D/opt/py"
mount --bind "$PROGS" "$D/prog"
exec chroot "$D" /usr/bin/env LD_LIBRARY_PATH=/opt/py/lib "/opt/py/bin/$EXE" "$@"
"""


def can_chroot():
    if os.geteuid() != 0:
        return "needs root (chroot, mount)"
    for tool in ("unshare", "chroot", "mount"):
        if not shutil.which(tool):
            return "%s is not installed" % tool
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        "mount --make-rprivate / && mount -t tmpfs none /mnt && chroot / true"],
                       capture_output=True)
    if r.returncode != 0:
        return "unshare -m / mount / chroot not permitted here: %s" % r.stderr.decode().strip()
    return None


def test_record_chrooted_target(default_py, spawn, tmp_path):
    why = can_chroot()
    if why:
        pytest.skip(why)
    exe = os.path.realpath(default_py.path)
    pyroot = os.path.dirname(os.path.dirname(exe))
    if not pyroot.startswith("/root/.pyenv/"):
        pytest.skip("needs a pyenv interpreter (its tree is mounted into the chroot)")
    root = tmp_path / "root"
    root.mkdir()
    script = tmp_path / "setup.sh"
    script.write_text(SETUP)
    progs = os.path.dirname(program("busy.py"))
    t = spawn(["unshare", "-m", "sh", str(script), root, pyroot, progs,
               os.path.basename(exe), "/prog/busy.py", 30])
    pid = int(t.ready[1])
    # The interpreter is mapped at a path that does not exist from here.
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    assert "/opt/py/" in maps, maps[:2000]
    assert os.readlink("/proc/%d/root" % pid) == str(root)

    out = tmp_path / "chroot.txt"
    r = homura("record", "-p", pid, "-d", 1, "-f", "collapsed", "-o", out)
    assert r.rc == 0, r.describe()
    with open(out, encoding="utf-8") as f:
        prof = Collapsed(f.read())
    n = prof.count(lambda fr: fr.name == "busy_work" and fr.file == "/prog/busy.py")
    assert n >= 0.5 * prof.total > 0, prof.summary()

    # --native opens the interpreter's ELF files the same way.
    out = tmp_path / "chroot_native.txt"
    r = homura("record", "--native", "-p", pid, "-d", 1, "-f", "collapsed", "-o", out)
    assert r.rc == 0, r.describe()
    with open(out, encoding="utf-8") as f:
        prof = Collapsed(f.read())
    assert prof.count(lambda fr: fr.name == "busy_work") >= 0.5 * prof.total > 0, prof.summary()
    # C functions of libpython, named from its symbols (file: its sources)
    native = prof.count(lambda fr: (fr.file or "").startswith(("Objects/", "Python/")))
    assert native > 0, "no interpreter C frames:\n" + prof.summary() + r.stderr
