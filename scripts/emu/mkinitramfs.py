#!/usr/bin/env python3
"""scripts/emu/mkinitramfs.py OUT INIT PROG [ARGS...]

Writes the initramfs that scripts/run-emulated-avx512 boots: an uncompressed
cpio archive in the "newc" format the kernel unpacks (Documentation/
driver-api/early-userspace/buffer-format.rst), holding

  /init          INIT (scripts/emu/init.c, static)
  /prog          PROG, the program under test (static)
  /args          ARGS, each ended by a NUL byte
  /dev/console   the console node (char 5:1), so that init has stdout

Written here rather than with cpio(1) because a device node in the archive
would need mknod, i.e. root, on the host.
"""
import os
import sys


def entry(name, mode, data=b"", rdev=(0, 0), ino=[0]):
    ino[0] += 1
    name_b = name.encode() + b"\0"
    # newc: "070701", then 13 fields of 8 hex digits: ino, mode, uid, gid,
    # nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
    # namesize (with its NUL), check (0 for newc).
    fields = [ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + name_b
    out += b"\0" * (-len(out) % 4)   # name padded so the data starts 4-aligned
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    out, init, prog, args = argv[1], argv[2], argv[3], argv[4:]
    with open(init, "rb") as f:
        init_b = f.read()
    with open(prog, "rb") as f:
        prog_b = f.read()
    blob = b"".join([
        entry("dev", 0o40755),
        entry("dev/console", 0o20600, rdev=(5, 1)),
        entry("init", 0o100755, init_b),
        entry("prog", 0o100755, prog_b),
        entry("args", 0o100644, b"".join(os.fsencode(a) + b"\0" for a in args)),
        entry("TRAILER!!!", 0),
    ])
    blob += b"\0" * (-len(blob) % 512)
    with open(out, "wb") as f:
        f.write(blob)


if __name__ == "__main__":
    main(sys.argv)
