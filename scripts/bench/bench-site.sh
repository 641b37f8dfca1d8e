#!/usr/bin/env bash
# Writes the benchmarks' site ledger: METERS meters, a quarter facility, half
# IT, the rest cooling and PV, so every code path of the engine is on the hot
# path. Used by audit.sh and collector.sh.
#   bench-site.sh METERS FILE
set -euo pipefail
meters=$1
{
  echo "site: bench"
  echo "name: benchmark site"
  echo "timezone: Asia/Shanghai"
  echo "racks: 2000"
  echo "rack_power_kw: 16000"
  echo "approved_annual_kwh: 900000000"
  echo "meters:"
  for ((i = 0; i < meters; i++)); do
    case $((i % 8)) in
      0|1) role=facility; rated=4000 ;;
      2|3|4|5) role=it; rated=2000 ;;
      6) role=cooling; rated=2000 ;;
      7) role=green_onsite; rated=500 ;;
    esac
    printf '  - {id: m%03d, role: %s, rated_kw: %s, model: bench, accuracy_class: "0.5S", calibrated_on: 2024-06-01}\n' \
      "$i" "$role" "$rated"
  done
} >"$2"
