#!/usr/bin/env bash
# Install the Debian 12 packages dcem needs to build and test.
# Idempotent and fast when everything is present: dpkg is asked first and
# apt-get runs only for what is missing. Needs root to install.
#
#   scripts/deps.sh              the host's build, tests, demo and benchmarks
#   scripts/deps.sh cross ARCH   a cross build for ARCH (arm64 or armhf; scripts/cross.sh):
#                                its toolchain, qemu-user, and the agent's libraries' -dev:ARCH
set -euo pipefail

# One package per line: what it is for is in README.md, "Dependencies".
PACKAGES=(
  build-essential   # gcc, make, libc headers
  cmake             # build system
  pkg-config        # locates the libraries below
  libcmocka-dev     # unit-test framework
  libyaml-dev       # YAML parser for site ledgers, policies and configs
  libcjson-dev      # JSON output of dcem-audit, and JSON parsing in tests
  tzdata            # IANA time-zone files read by the calendar
  libmodbus-dev     # Modbus RTU/TCP: the agent's poller and the meter simulator
  libpaho-mqtt-dev  # MQTT 3.1.1/5 client (paho-mqtt-c): agent publishing
  mosquitto         # MQTT broker started by the integration tests and the demo
  mosquitto-clients # mosquitto_sub/pub for tests and operations
  openssl           # scripts/mint-certs.sh: the broker's CA and certificates
  socat             # pseudo-terminal pairs: Modbus RTU in tests
  mbpoll            # independent Modbus client for simulator tests
  zlib1g-dev        # crc32 of spool records
  libcurl4-openssl-dev # HTTP client of the collector's InfluxDB writer
  influxdb          # InfluxDB 1.6 server started by the integration tests
  influxdb-client   # influx CLI, to look at what the collector wrote
  time              # /usr/bin/time -v: peak memory in the benchmarks
  libsqlite3-dev    # the collector's embedded store (gateway/store)
  sqlite3           # command-line shell to inspect a store
  libpq-dev         # libpq: the store's PostgreSQL backend (gateway/store/store_pg.c)
  postgresql-15     # PostgreSQL server the store tests start on loopback (initdb, pg_ctl, psql)
  libmicrohttpd-dev # the collector's HTTP API and dashboard server
  libxlsxwriter-dev # XLSX reports (dcem-report)
  libssl-dev        # libcrypto: PEM keys, SHA-256 (signatures, report manifests)
  libsodium-dev     # Ed25519 signing and verifying of every MQTT message (common/sign)
  python3-openpyxl  # tests open the XLSX reports and check their cells
  python3-pymodbus  # an independent Modbus server (partial register maps) in the agent tests
  python3-serial    # pyserial: pymodbus imports it even for its TCP server
  python3-serial-asyncio # and serial_asyncio too
  chromium          # headless browser of the dashboard test
  fonts-wqy-microhei # a CJK font, so the dashboard's Chinese renders in its screenshots
  clang-14          # compiler of the fuzz targets (scripts/fuzz.sh)
  libclang-rt-14-dev # libFuzzer and clang's ASan/UBSan runtimes
  llvm-14           # llvm-symbolizer: function and line names in sanitizer reports
  dpkg-dev          # dpkg-shlibdeps: the packages' library dependencies (scripts/package.sh)
  lintian           # checks the Debian packages scripts/package.sh builds
  adduser           # the packages' dcem system user (a dependency of dcem-data)
)

cross_arch=""
if [[ ${1:-} == cross ]]; then
  cross_arch=${2:-}
  [[ $cross_arch == arm64 || $cross_arch == armhf ]] ||
    { echo "deps.sh: cross ARCH: arm64 or armhf" >&2; exit 2; }
  # the libraries the agent's side links (common/, firmware/, their tests),
  # for the target; a cross build has no collector (DCEM_COLLECTOR OFF), whose
  # libpq-dev could not be installed for ARCH anyway: it is not
  # Multi-Arch: same, and installing it for ARCH removes the host's
  PACKAGES=(crossbuild-essential-"$cross_arch" qemu-user pkg-config cmake mosquitto socat)
  for lib in libcmocka-dev libyaml-dev libcjson-dev libmodbus-dev libpaho-mqtt-dev zlib1g-dev \
    libssl-dev libsodium-dev; do
    PACKAGES+=("$lib:$cross_arch")
  done
fi

names=()
for p in "${PACKAGES[@]}"; do names+=("${p%% *}"); done

native=$(dpkg --print-architecture)
missing=()
for p in "${names[@]}"; do
  # a name without :ARCH means the host's (or an arch-independent) package,
  # also when another architecture's is installed beside it (cross builds)
  arch=all
  [[ $p == *:* ]] && arch=${p#*:}
  dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null |
    grep -qE "^install ok installed ($arch|$native)\$" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "deps.sh: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if [[ -n $cross_arch ]] && ! dpkg --print-foreign-architectures | grep -qx "$cross_arch"; then
  dpkg --add-architecture "$cross_arch"
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
