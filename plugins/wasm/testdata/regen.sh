#!/bin/sh
# regen.sh re-assembles every .wat in this directory into its .wasm with
# wat2wasm (Debian package wabt). With -check it assembles into a temporary
# directory instead and fails when a committed .wasm differs.
set -eu
cd "$(dirname "$0")"
command -v wat2wasm >/dev/null || { echo "regen.sh: wat2wasm not found (apt-get install -y wabt)" >&2; exit 2; }
check=0
[ "${1-}" = -check ] && check=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for wat in *.wat; do
	wasm=${wat%.wat}.wasm
	wat2wasm "$wat" -o "$tmp/$wasm"
	if [ $check = 1 ]; then
		if ! cmp -s "$tmp/$wasm" "$wasm"; then
			echo "regen.sh: testdata/$wasm differs from wat2wasm $wat (run plugins/wasm/testdata/regen.sh)" >&2
			status=1
		fi
	else
		cp "$tmp/$wasm" "$wasm"
	fi
done
exit $status
