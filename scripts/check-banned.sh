#!/usr/bin/env bash
# Fails when C sources use functions STYLE.md bans for parsing input or
# copying into buffers (curl does the same with checksrc). Run by CTest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pattern='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|atol|atoll|atof|sscanf|gets)\s*\('
if hits=$(grep -rnP --include='*.c' --include='*.h' "$pattern" \
          "$root/common" "$root/firmware" "$root/gateway" "$root/tests" 2>/dev/null); then
  echo "banned functions (use snprintf, memcpy with a checked length, or common/parse.h):" >&2
  echo "$hits" >&2
  exit 1
fi
echo "no banned functions"
