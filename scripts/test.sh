#!/usr/bin/env bash
# The whole suite twice: SQLite with the in-process store, then PostgreSQL with Redis.
set -u
cd "$(dirname "$0")/.."
state=$(mktemp -d /tmp/ias-services.XXXXXX)
trap 'scripts/services.sh stop "$state"' EXIT INT TERM

pytest_args=(-q -p no:cacheprovider "$@")
scripts/services.sh start "$state" || { echo "could not start PostgreSQL and Redis" >&2; exit 1; }
# shellcheck disable=SC1091
. "$state/env"
export SERVICES_ENV_FILE="$state/env"

echo "== backend 1/2: SQLite + in-process store"
env -u TEST_DATABASE_URL -u TEST_REDIS_URL .venv/bin/pytest "${pytest_args[@]}"
sqlite_rc=$?

echo "== backend 2/2: PostgreSQL + Redis"
.venv/bin/pytest "${pytest_args[@]}"
pg_rc=$?

echo "sqlite suite exit $sqlite_rc, postgresql suite exit $pg_rc"
[ "$sqlite_rc" = 0 ] && [ "$pg_rc" = 0 ]
