"""Writes python-*.tar from the tree in the current directory (see gen.sh).

python-pax.tar, python-gnu.tar, python-ustar.tar: tarfile.add of every path
in the given format (members a format cannot hold are left out of that
archive: tarfile raises ValueError for them), owners set by a filter, plus a
member with uid/gid beyond the octal range. python-pax-size.tar: a small
member whose size is (also) given by an explicit PAX "size" record.
"""
import os
import sys
import tarfile

out = sys.argv[1]


def owner(ti):
    ti.uid, ti.gid, ti.uname, ti.gname = 1000, 100, "alice", "staff"
    return ti


def paths():
    res = []
    for root, dirs, files in os.walk("."):
        dirs.sort()
        for name in sorted(dirs + files):
            res.append(os.path.join(root, name)[2:])
    return res


for fmt, name in ((tarfile.PAX_FORMAT, "pax"), (tarfile.GNU_FORMAT, "gnu"),
                  (tarfile.USTAR_FORMAT, "ustar")):
    with tarfile.open(os.path.join(out, "python-%s.tar" % name), "w", format=fmt) as tf:
        for p in paths():
            ti = owner(tf.gettarinfo(p))
            if fmt == tarfile.USTAR_FORMAT and (len(ti.linkname) > 100 or ti.mtime < 0):
                continue
            try:
                ti.tobuf(fmt, tf.encoding, tf.errors)
            except ValueError:
                continue
            if ti.isreg():
                with open(p, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
        if fmt != tarfile.USTAR_FORMAT:
            ti = tarfile.TarInfo("big-ids.txt")
            ti.size, ti.mtime, ti.mode = os.path.getsize("hello.txt"), 1600000000, 0o644
            ti.uid, ti.gid, ti.uname, ti.gname = 3000000, 4000000, "bob", "big"
            with open("hello.txt", "rb") as f:
                tf.addfile(ti, f)

with tarfile.open(os.path.join(out, "python-pax-size.tar"), "w", format=tarfile.PAX_FORMAT) as tf:
    ti = owner(tf.gettarinfo("hello.txt", arcname="pax-size.txt"))
    ti.pax_headers = {"size": str(ti.size), "comment": "explicit size record"}
    with open("hello.txt", "rb") as f:
        tf.addfile(ti, f)
