#!/usr/bin/env bash
# The whole suite twice: SQLite with the in-process store, then PostgreSQL with Redis (and a streaming
# replica for the read routing); then the tests marked `redis` once more on a three-master Redis Cluster.
set -u
cd "$(dirname "$0")/.."
state=$(mktemp -d /tmp/ias-services.XXXXXX)
trap 'scripts/services.sh stop "$state"' EXIT INT TERM

pytest_args=(-q -p no:cacheprovider "$@")
scripts/ensure-node-tools.sh || { echo "could not install the Node tools (npm ci in tools/)" >&2; exit 1; }
scripts/services.sh start "$state" || { echo "could not start PostgreSQL and Redis" >&2; exit 1; }
scripts/services.sh start-replica "$state" || { echo "could not start the PostgreSQL replica" >&2; exit 1; }
# shellcheck disable=SC1091
. "$state/env"
export SERVICES_ENV_FILE="$state/env"

echo "== backend 1/3: SQLite + in-process store"
env -u TEST_DATABASE_URL -u TEST_REDIS_URL -u TEST_REDIS_CLUSTER_URL -u TEST_DATABASE_REPLICA_URL .venv/bin/pytest "${pytest_args[@]}"
sqlite_rc=$?

echo "== backend 2/3: PostgreSQL + Redis"
.venv/bin/pytest "${pytest_args[@]}"
pg_rc=$?

# The store on the cluster; RQ does not support a cluster, so the job queue stays on the plain Redis.
# Deselected: a test that counts one server's commandstats (a cluster spreads them over three).
echo "== backend 3/3: PostgreSQL + Redis Cluster (tests marked redis)"
RQ_REDIS_URL=$TEST_REDIS_URL TEST_REDIS_URL=$TEST_REDIS_CLUSTER_URL .venv/bin/pytest "${pytest_args[@]}" -m redis \
  --deselect tests/test_wallet_api.py::test_a_live_code_is_verified_in_one_blocking_round_trip_to_the_store
cluster_rc=$?

echo "sqlite suite exit $sqlite_rc, postgresql suite exit $pg_rc, redis cluster pass exit $cluster_rc"
[ "$sqlite_rc" = 0 ] && [ "$pg_rc" = 0 ] && [ "$cluster_rc" = 0 ]
