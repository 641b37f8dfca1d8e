#!/usr/bin/env bash
# The README's first command. The live demo (simulated meters, agents, the
# collector and the dashboard together) comes with the dashboard (issue 5);
# until then this shows the figures engine: it generates a year of 15-minute
# readings for the three sample sites and has dcem-audit give their verdicts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/release"
out=${DCEM_DEMO_DIR:-"$root/build/demo"}

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target dcem-audit dcem-gen >/dev/null
mkdir -p "$out"

echo "The live demo (simulated meters, agents, collector, dashboard) is not there yet (issue 5)."
echo "Meanwhile: a generated year for the three sample sites, audited."
for site in yz-alpha yz-beta yz-gamma; do
  ledger="$root/configs/sites/$site.yaml"
  "$build/tests/dcem-gen" --site "$ledger" --year 2025 --faults \
    --out "$out/$site.csv" --truth "$out/$site-truth.json"
  echo
  "$build/common/audit/dcem-audit" --site "$ledger" \
    --policy "$root/configs/policy/beijing-etown-2024.yaml" \
    --readings "$out/$site.csv" --year 2025 >"$out/$site-2025.txt"
  "$build/common/audit/dcem-audit" --site "$ledger" \
    --policy "$root/configs/policy/beijing-etown-2024.yaml" \
    --readings "$out/$site.csv" --year 2025 --json >"$out/$site-2025.json"
  head -n 2 "$out/$site-2025.txt"
  grep -E '^period|^2025 ' "$out/$site-2025.txt"
done
echo
echo "Readings, audit tables and JSON are in $out"
