#!/usr/bin/env python3
"""scripts/emu/serial-extract.py SERIAL_LOG

Writes to stdout the program's output from the emulated machine's serial log
(the bytes between scripts/emu/init.c's "SMOKE-EMU-BEGIN" line and the
newline it prints before "SMOKE-EMU-EXIT <code>") and exits with <code>.
Exit 125 when the markers are not there.
"""
import re
import sys

data = open(sys.argv[1], "rb").read()
begin = data.find(b"SMOKE-EMU-BEGIN\n")
end = re.search(rb"\nSMOKE-EMU-EXIT (\d+)\r?\n", data)
if begin < 0 or end is None or end.start() < begin:
    sys.stderr.write("serial-extract: no complete SMOKE-EMU markers in %s\n" % sys.argv[1])
    sys.exit(125)
sys.stdout.buffer.write(data[begin + len(b"SMOKE-EMU-BEGIN\n"):end.start()])
sys.stdout.flush()
sys.exit(int(end.group(1)))
