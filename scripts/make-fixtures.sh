#!/bin/sh
# Regenerates spec/fixtures/facts/*.json from the lab and the hostile peer
# (scripts/make-fixtures.lua says which fixture comes from where).
#   sh scripts/make-fixtures.sh [NAME ...]     as root: starts and stops the lab
set -eu
cd "$(dirname "$0")/.."
make >/dev/null
sh spec/lab/lab.sh up >/dev/null
trap 'sh spec/lab/lab.sh down >/dev/null 2>&1' EXIT
lua5.4 scripts/make-fixtures.lua "$@"
