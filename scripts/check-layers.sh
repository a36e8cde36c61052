#!/usr/bin/env bash
# Fails when a module imports from a floor above its own (see "Floors" in src/lib.rs).
#
# Each top-level module of src/ sits on one floor; code (not comments) may name
# `crate::<module>` only for modules on its own floor or below. Root re-exports
# (`crate::Connection`) hide the floor, so code outside lib.rs names the module.
# scripts/layers-allow.txt lists the known exceptions, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A floor=(
  [wire]=1
  [role]=2 [config]=2 [error]=2 [event]=2
  [frame]=3
  [message]=4 [extensions]=4
  [connection]=5
  [handshake]=6 [trace]=6
  [ws_connection]=7 [lifecycle]=7
  [adapters]=8 [codec]=8 [session]=8 [upgrade]=8
  [integrations]=9 [http_compat]=9 [hyper]=9 [axum]=9
)

allowed() { sed -n 's/^\([^#][^:]*\):.*/\1/p' scripts/layers-allow.txt | grep -qxF "$1"; }

status=0
while IFS= read -r file; do
  rel=${file#src/}
  [ "$rel" = lib.rs ] && continue
  top=${rel%%/*}
  top=${top%.rs}
  own=${floor[$top]:-}
  if [ -z "$own" ]; then
    echo "$file: module '$top' has no floor in scripts/check-layers.sh"
    status=1
    continue
  fi
  # Code lines only: drop comment and doc lines, then every crate:: path.
  while IFS=: read -r line target; do
    if [[ $target =~ ^[A-Z] ]]; then
      echo "$file:$line: crate::$target names a root re-export; name its module"
      status=1
      continue
    fi
    theirs=${floor[$target]:-}
    if [ -z "$theirs" ]; then
      echo "$file:$line: crate::$target is not a known module"
      status=1
    elif [ "$theirs" -gt "$own" ] && ! allowed "$top -> $target"; then
      echo "$file:$line: $top (floor $own) imports $target (floor $theirs)"
      status=1
    fi
  done < <(grep -nv '^\s*//' "$file" | grep -oE '^[0-9]+:|crate::[A-Za-z_0-9]+' |
    awk '/^[0-9]+:$/ { line = substr($0, 1, length($0) - 1); next } { sub(/^crate::/, ""); print line ":" $0 }')
done < <(find src -name '*.rs' | sort)

if [ "$status" -eq 0 ]; then echo "layers: every import points down"; fi
exit "$status"
