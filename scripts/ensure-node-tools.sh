#!/usr/bin/env bash
# Node tools the tests run (Redocly CLI for the OpenAPI lint), installed from their lockfiles when missing or stale.
set -eu
cd "$(dirname "$0")/.."
for tool in tools/openapi-lint; do
  if [ ! -f "$tool/node_modules/.package-lock.json" ] || [ "$tool/package-lock.json" -nt "$tool/node_modules/.package-lock.json" ]; then
    (cd "$tool" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
