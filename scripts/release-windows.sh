#!/usr/bin/env bash
# The Windows release zip: ecrlink.exe, config\config.example.json, README-windows.md.
#   scripts/release-windows.sh [--no-build]
# writes target/dist/ecrlink-VERSION-windows-x86_64.zip. Needs the x86_64-pc-windows-gnu
# target (rustup target add) and Debian's gcc-mingw-w64-x86-64 and zip. The wine stand-in
# DLL of .ci/wine is never put in the zip.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
name="ecrlink-$version-windows-x86_64"
if [ "${1:-}" != --no-build ]; then
  cargo build --release --target "$target"
fi
exe="target/$target/release/ecrlink.exe"
[ -f "$exe" ] || { echo "no $exe: build it first (or drop --no-build)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/config" target/dist
cp "$exe" "$stage/$name/ecrlink.exe"
cp packaging/windows/config.example.json "$stage/$name/config/config.example.json"
cp packaging/windows/README-windows.md "$stage/$name/README-windows.md"
# CRLF for Notepad on older Windows 10 builds.
sed -i 's/$/\r/' "$stage/$name/README-windows.md" "$stage/$name/config/config.example.json"
out="$PWD/target/dist/$name.zip"
rm -f "$out"
(cd "$stage" && zip -q -r -X "$out" "$name")
echo "wrote $out ($(du -k "$out" | cut -f1) KiB; ecrlink.exe $(du -k "$exe" | cut -f1) KiB)"
