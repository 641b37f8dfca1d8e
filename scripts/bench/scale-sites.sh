#!/usr/bin/env bash
# Writes the scale benchmark's site ledgers: SITES sites PREFIX-001 …, each
# with GATEWAYS gateways gw-1 … (listed without keys: the benchmark's
# collector is a lab one) of METERS meters each, meter ids m00000 … in
# gateway order; roles as in bench-site.sh (a quarter facility, half IT,
# the rest cooling and PV). tests/tools/dcem-scale publishes for exactly
# these meters.
#   scale-sites.sh SITES GATEWAYS METERS DIR [PREFIX]
set -euo pipefail
sites=$1 gateways=$2 meters=$3 dir=$4 prefix=${5:-sc}
mkdir -p "$dir"
for ((s = 1; s <= sites; s++)); do
  site=$(printf '%s-%03d' "$prefix" "$s")
  {
    echo "site: $site"
    echo "name: scale benchmark site $s"
    echo "timezone: Asia/Shanghai"
    echo "racks: 2000"
    echo "rack_power_kw: 16000"
    echo "approved_annual_kwh: 9000000000"
    echo "meters:"
    for ((i = 0; i < gateways * meters; i++)); do
      case $((i % 8)) in
        0|1) role=facility; rated=4000 ;;
        2|3|4|5) role=it; rated=2000 ;;
        6) role=cooling; rated=2000 ;;
        7) role=green_onsite; rated=500 ;;
      esac
      printf '  - {id: m%05d, role: %s, rated_kw: %s, model: bench, accuracy_class: "0.5S", calibrated_on: 2024-06-01}\n' \
        "$i" "$role" "$rated"
    done
    echo "gateways:"
    for ((g = 1; g <= gateways; g++)); do echo "  - id: gw-$g"; done
  } >"$dir/$site.yaml"
done
