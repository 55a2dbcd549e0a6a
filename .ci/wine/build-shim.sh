#!/usr/bin/env bash
# Builds the ProcessPrng stand-in (see bcryptprimitives.c) and copies it into every
# folder given, next to the .exe files wine runs there. CI only: never put it in a
# release.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${SHIM_OUT:-$here/../../target/wine-shim}"
mkdir -p "$out"
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$out/bcryptprimitives.dll" \
  "$here/bcryptprimitives.c" -ladvapi32
for dir in "$@"; do
  mkdir -p "$dir"
  cp "$out/bcryptprimitives.dll" "$dir/"
done
