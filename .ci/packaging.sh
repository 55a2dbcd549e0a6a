#!/usr/bin/env bash
# Linux packaging part of CI (issue 17), run by .ci/run after `cargo test` (it packages the
# debug binary that run built; a release .deb is `cargo deb`). Builds the .deb with
# cargo-deb, checks what it installs, and verifies the unit *as packaged* with
# systemd-analyze in a root made from the .deb. tests/packaging.rs checks the unit in the
# repo. Each part prints its seconds. Any failure exits non-zero; only when not root and a
# tool is missing does it print why and exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
timed() {
  local label=$1 t0=$SECONDS
  shift
  "$@"
  echo "packaging: $label: $((SECONDS - t0)) s"
}
cargo_deb_version=3.8.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED packaging: not root, cannot install systemd (for systemd-analyze)"
    exit 0
  fi
  install_systemd() {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
  }
  timed "apt-get install systemd" install_systemd
fi
if ! cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
  timed "cargo install cargo-deb $cargo_deb_version" \
    cargo install cargo-deb --locked --version "$cargo_deb_version" -q
fi
[ -x target/debug/ecrlink ] || cargo build -q

deb=target/debian/ecrlink-ci.deb
rm -f "$deb"
# The dev profile reuses the binary `cargo test` built; cargo-deb warns that it is meant
# for releases, which is what `cargo deb` without flags makes.
timed "cargo deb (debug binary)" cargo deb --no-build --profile dev --fast -o "$deb" -q 2>&1 |
  grep -v -e "dev profile is not supported" -e "To enable debug symbols" || true
[ -f "$deb" ]

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
check_contents() {
  dpkg-deb -x "$deb" "$root"
  dpkg-deb -e "$deb" "$root/DEBIAN"
  local f
  for f in usr/bin/ecrlink usr/lib/systemd/system/ecrlink.service etc/ecrlink/config.json \
    usr/share/doc/ecrlink/README.Debian; do
    [ -f "$root/$f" ] || { echo "packaging: the .deb lacks /$f" >&2; return 1; }
  done
  grep -qx /etc/ecrlink/config.json "$root/DEBIAN/conffiles"
  grep -q "deb-systemd-invoke stop ecrlink.service" "$root/DEBIAN/prerm"
  cmp -s packaging/linux/ecrlink.service "$root/usr/lib/systemd/system/ecrlink.service"
  "$root/usr/bin/ecrlink" config check --config "$root/etc/ecrlink/config.json" >/dev/null
  echo "packaging: $(dpkg-deb -f "$deb" Package Version Depends | tr '\n' ' ')"
}
timed "contents of the .deb" check_contents

verify_packaged_unit() {
  mkdir -p "$root/lib/systemd"
  cp -r /lib/systemd/system "$root/lib/systemd/"
  local said
  said=$(systemd-analyze verify --root="$root" ecrlink.service 2>&1) || {
    echo "$said" >&2
    return 1
  }
  # verify exits 0 for unknown keys and bad values: any line it prints is a failure.
  [ -z "$said" ] || { echo "$said" >&2; return 1; }
  echo "packaging: systemd-analyze verify: no findings"
  systemd-analyze security --offline=yes --root="$root" ecrlink.service 2>/dev/null |
    tail -1 | sed 's/^/packaging: systemd-analyze security: /' || true
}
timed "systemd-analyze verify of the packaged unit" verify_packaged_unit
echo "packaging: all parts passed in $((SECONDS - start)) s"
