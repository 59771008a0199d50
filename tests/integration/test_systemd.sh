#!/bin/sh
# Check systemd/smoked.service: `systemd-analyze verify` finds no problem and
# `systemd-analyze security --offline=true` scores its exposure at most 2.0.
# Also checks that systemd/smoked.conf is accepted by smoked itself.
# Usage: test_systemd.sh SOURCE_ROOT PATH/TO/smoked
# Exit 77 (skipped) without systemd-analyze.
set -eu
root=$1
# meson passes a path relative to the build directory; systemd wants it absolute.
smoked=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
unit=$root/systemd/smoked.service

# The example config must parse (--print-config loads no model).
"$smoked" --config "$root/systemd/smoked.conf" --print-config > /dev/null

if ! command -v systemd-analyze > /dev/null; then
	echo "SKIP: systemd-analyze is not installed"
	exit 77
fi

# verify wants ExecStart's binary to exist: point it at the build.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/smoked|$smoked|" "$unit" > "$tmp/smoked.service"
out=$(systemd-analyze verify "$tmp/smoked.service" 2>&1) || { echo "$out"; echo "FAIL: verify"; exit 1; }
# verify prints warnings without failing; the unit must be clean.
if printf '%s\n' "$out" | grep -v '^$' | grep -q .; then
	echo "$out"
	echo "FAIL: systemd-analyze verify printed warnings"
	exit 1
fi
echo "ok    systemd-analyze verify"

sec=$(systemd-analyze security --offline=true --no-pager "$tmp/smoked.service" 2>&1) || true
score=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
	echo "$sec"
	echo "FAIL: no exposure level in the output"
	exit 1
fi
if awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
	echo "ok    exposure $score <= 2.0"
else
	printf '%s\n' "$sec" | grep -v '^  ✓' | head -60
	echo "FAIL: exposure $score > 2.0"
	exit 1
fi
