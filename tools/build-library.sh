#!/usr/bin/env bash
# Builds the library into dist/ (npm run build; npm pack runs it through prepack): the compiled
# components with declarations, and every host-side script folder (components/**/scripts/*.sh)
# at the same place relative to the module that reads it at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf dist
node_modules/.bin/tsc -p tsconfig.build.json
while IFS= read -r -d '' script; do
  rel=${script#components/}
  mkdir -p "dist/$(dirname "$rel")"
  cp -p "$script" "dist/$rel"
done < <(find components -path '*/scripts/*.sh' -type f -print0)
