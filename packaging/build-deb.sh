#!/usr/bin/env bash
# Builds the Debian packages of `convene` and `convene-appliance`:
#
#   packaging/build-deb.sh                 # release build, both packages, into target/debian/
#   packaging/build-deb.sh convene         # one package
#   PROFILE=debug NO_BUILD=1 COMPRESS=none OUT=/tmp/debs packaging/build-deb.sh   # what the tests do
#
# Only dpkg-deb and the build's own binaries: no cargo-deb to install (CI and
# a Raspberry Pi build the same way). Each package holds the binary in
# /usr/bin, its systemd unit, its default configuration in /etc/convene/
# (a conffile: kept on upgrade if edited), its documentation, and the
# maintainer scripts of packaging/deb/<package>/ (the `convene` system user;
# the data in /var/lib/<package> is kept on upgrade, removal and purge).
# Depends are the Debian packages owning the shared libraries the binary
# links (what dpkg-shlibdeps finds, done with ldd + dpkg -S), plus adduser.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${PROFILE:-release}
out=${OUT:-target/debian}
packages=("$@")
[ ${#packages[@]} -eq 0 ] && packages=(convene convene-appliance)

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$out"

# The packages owning the libraries `bin` links, as a Depends list.
depends() {
  local bin=$1 libs pkgs=() p v
  libs=$(ldd "$bin" | awk '/=> \//{print $3}')
  for lib in $libs; do
    p=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) ||
      p=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -n "$p" ] && pkgs+=("$p")
  done
  for p in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
    v=$(dpkg-query -W -f='${Version}' "$p" | sed 's/-[^-]*$//')
    printf '%s (>= %s), ' "$p" "$v"
  done
  printf 'adduser\n'
}

for pkg in "${packages[@]}"; do
  case $pkg in
    convene)
      crate=convene-server; bin=convene; unit=packaging/convene.service
      conf=packaging/convene.toml; conf_name=convene.toml
      docs=(README.md docs/configuration.md docs/operations.md)
      summary="self-hosted video-conferencing server (SFU, room API, browser client)"
      ;;
    convene-appliance)
      crate=convene-appliance; bin=convene-appliance; unit=packaging/convene-appliance.service
      conf=packaging/appliance.toml; conf_name=appliance.toml
      docs=(docs/appliance.md)
      summary="Convene room appliance agent (camera, microphone, device API)"
      ;;
    *) echo "unknown package: $pkg (convene or convene-appliance)" >&2; exit 2 ;;
  esac
  if [ -z "${NO_BUILD:-}" ]; then
    if [ "$profile" = release ]; then
      cargo build --locked --release -p "$crate" --bin "$bin"
    else
      cargo build --locked -p "$crate" --bin "$bin"
    fi
  fi
  binary="$target_dir/$profile/$bin"
  [ -x "$binary" ] || { echo "no binary at $binary (build it, or unset NO_BUILD)" >&2; exit 1; }

  root=$(mktemp -d)
  chmod 0755 "$root"
  trap 'rm -rf "$root"' EXIT
  install -D -m 0755 "$binary" "$root/usr/bin/$bin"
  [ "$profile" = release ] && strip "$root/usr/bin/$bin"
  install -D -m 0644 "$unit" "$root/lib/systemd/system/$(basename "$unit")"
  install -D -m 0640 "$conf" "$root/etc/convene/$conf_name"
  for d in "${docs[@]}"; do
    install -D -m 0644 "$d" "$root/usr/share/doc/$pkg/$(basename "$d")"
  done
  install -d "$root/DEBIAN"
  for s in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$pkg/$s" "$root/DEBIAN/$s"
  done
  echo "/etc/convene/$conf_name" > "$root/DEBIAN/conffiles"
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat > "$root/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: Convene developers <convene@localhost>
Installed-Size: $size
Depends: $(depends "$binary")
Section: net
Priority: optional
Homepage: https://github.com/convene/convene
Description: $summary
 Built from the Convene workspace by packaging/build-deb.sh ($profile profile).
 The service runs as the system user convene with its data in
 /var/lib/$pkg, which upgrades, removal and purge keep.
EOF
  deb="$out/${pkg}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group -Z"${COMPRESS:-xz}" --build "$root" "$deb" >/dev/null
  rm -rf "$root"
  trap - EXIT
  echo "$deb"
done
