#!/usr/bin/env bash
# Debian packages of dcem (docs/packages.md), into dist/:
#
#   scripts/package.sh [ARCH...]     ARCH: amd64 arm64 armhf (default: all three)
#
#   dcem-data_V_all.deb          meter profiles, policy, sample ledgers, the dcem user
#   dcem-agent_V_ARCH.deb        the gateway agent, for every ARCH
#   dcem-collector_V_amd64.deb   collector, dcem-report, dcem-audit, dashboard
#
# amd64 is the build scripts/test.sh tests (build/release); arm64 and armhf
# are scripts/cross.sh's (build/ARCH). Each is configured and built here
# (a no-op when it is up to date), installed by CMake component into a
# staging folder (stripped), given its control files from packaging/ and its
# shared-library dependencies by dpkg-shlibdeps, built with dpkg-deb and
# checked by lintian: an error fails the script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
arches=("$@")
((${#arches[@]})) || arches=(amd64 arm64 armhf)
for a in "${arches[@]}"; do
  [[ $a == amd64 || $a == arm64 || $a == armhf ]] || { echo "package.sh: unknown ARCH $a" >&2; exit 2; }
done
[[ $(dpkg --print-architecture) == amd64 ]] || { echo "package.sh: runs on amd64" >&2; exit 2; }

"$root/scripts/deps.sh"
version=$(sed -n 's/^project(dcem VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
dist=$root/dist
stage=$root/build/pkg
rm -rf "$stage"
mkdir -p "$dist" "$stage"

build_dir() { # ARCH: configure and build it, print its folder
  if [[ $1 == amd64 ]]; then
    # the flags of scripts/test.sh's release suite: the tested build
    cmake -S "$root" -B "$root/build/release" -DDCEM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DDCEM_SANITIZE=OFF >/dev/null
    cmake --build "$root/build/release" -j "$jobs" >/dev/null
    echo "$root/build/release"
  else
    "$root/scripts/cross.sh" "$1" >&2
    echo "$root/build/$1"
  fi
}

# package NAME ARCH BUILD_DIR COMPONENT: one .deb into dist/
package() {
  local name=$1 arch=$2 dir=$3 component=$4
  local tree=$stage/${name}_$arch
  DESTDIR=$tree cmake --install "$dir" --prefix /usr --component "$component" --strip >/dev/null
  local doc=$tree/usr/share/doc/$name
  install -d -m 0755 "$doc" "$tree/DEBIAN"
  install -m 0644 "$root/packaging/copyright" "$doc/copyright"
  sed "s/@VERSION@/$version/" "$root/packaging/changelog" | gzip -9n >"$doc/changelog.gz"
  chmod 0644 "$doc/changelog.gz"
  local shlibs=""
  if [[ $arch != all ]]; then
    # dpkg-shlibdeps reads debian/control; a minimal one in a scratch folder
    local sd=$stage/shlibs-${name}_$arch
    mkdir -p "$sd/debian"
    printf 'Source: dcem\n\nPackage: %s\nArchitecture: %s\n' "$name" "$arch" >"$sd/debian/control"
    local bins=()
    while IFS= read -r -d '' f; do bins+=("$f"); done < <(find "$tree/usr/bin" -type f -print0)
    shlibs=$(cd "$sd" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O --warnings=0 "${bins[@]}" |
      sed -n 's/^shlibs:Depends=//p')
  fi
  local size
  size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
  sed -e "s/@VERSION@/$version/g" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@SHLIBS@/$shlibs/" "$root/packaging/$name.control" >"$tree/DEBIAN/control"
  for script in postinst prerm postrm; do
    [[ -e $root/packaging/$name.$script ]] && install -m 0755 "$root/packaging/$name.$script" "$tree/DEBIAN/$script"
  done
  if [[ -d $tree/etc ]]; then # everything under /etc is a conffile
    (cd "$tree" && find etc -type f | sort | sed 's|^|/|') >"$tree/DEBIAN/conffiles"
  fi
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$tree/DEBIAN/md5sums"
  find "$tree" -type d -exec chmod 0755 {} +
  local deb=$dist/${name}_${version}_$arch.deb
  dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
  echo "package.sh: $(basename "$deb") ($size KiB installed)" >&2
}

for arch in "${arches[@]}"; do
  dir=$(build_dir "$arch")
  package dcem-agent "$arch" "$dir" agent
  if [[ $arch == amd64 ]]; then
    package dcem-collector amd64 "$dir" collector
    package dcem-data all "$dir" data
  fi
done

echo "== lintian" >&2
debs=()
for f in "$stage"/*_*/DEBIAN/control; do
  t=${f%/DEBIAN/control}; t=${t##*/}
  debs+=("$dist/${t%_*}_${version}_${t##*_}.deb")
done
# errors fail; warnings and notes are printed (docs/packages.md lists them)
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" >&2
ls -l "${debs[@]}" | awk '{print $5, $9}' | sed "s|$root/||" >&2
