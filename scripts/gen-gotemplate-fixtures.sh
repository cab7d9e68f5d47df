#!/bin/sh
# Regenerates crates/kiln-gotemplate/tests/fixtures/go_outputs.json by rendering
# every corpus case with Go's text/template (needs a Go toolchain, e.g. Debian's
# golang-go; no network access is used). CI only reads the committed fixture.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
crate="$root/crates/kiln-gotemplate"
cd "$root/scripts/gotemplate-ref"
GOFLAGS=-mod=mod GOPROXY=off go run . "$crate/tests/corpus" "$crate/tests/fixtures/go_outputs.json"
echo "wrote $crate/tests/fixtures/go_outputs.json"
