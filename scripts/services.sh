#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on loopback for the test suite: `services.sh start DIR` / `stop DIR`.
# `start` also starts a three-master Redis Cluster (TEST_REDIS_CLUSTER_URL); `start-replica DIR` adds a
# streaming replica of the PostgreSQL (pg_basebackup -R) and appends TEST_DATABASE_REPLICA_URL to DIR/env.
# `packages bench` installs what they need and wrk, the load generator of `make bench`; `packages run`
# only the CJK font of the decision PDFs, when that needs no password, else it says what to install.
set -euo pipefail

action=${1:?start|stop|start-replica|packages}
dir=${2:?state directory, or 'bench' for packages}
pg_user=iastest

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if [ ! -f /tmp/.ias-apt-updated ]; then as_root apt-get update -qq && touch /tmp/.ias-apt-updated; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_packages() {
  command -v redis-server >/dev/null || apt_install redis-server
  [ -n "$(pg_bin)" ] || apt_install postgresql
  dpkg -s libzbar0 >/dev/null 2>&1 || apt_install libzbar0  # zbar for pyzbar (wallet QR tests)
  [ -x /usr/bin/chromium ] || apt_install chromium           # headless browser for the page tests
  has_document_font || apt_install fonts-wqy-microhei  # CJK font for decision PDFs
  command -v pdftotext >/dev/null || apt_install poppler-utils  # pdftotext reads the decision PDFs in the tests
}

# app/results/documents.py's FONT_CANDIDATES (tests/test_results_seals.py keeps the two lists equal)
document_fonts=(/usr/share/fonts/truetype/wqy/wqy-microhei.ttc /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
                /usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
                /usr/share/fonts/truetype/arphic/uming.ttc)

has_document_font() {
  local font
  for font in "${document_fonts[@]}"; do [ -f "$font" ] && return 0; done
  return 1
}

ensure_document_font() {
  has_document_font && return 0
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then apt_install fonts-wqy-microhei && return 0; fi
  echo "make run: no CJK font, so decisions wait for one (sudo apt-get install fonts-wqy-microhei," \
       "then flask --app wsgi applications settle); DOCUMENT_FONT may name another TTF/TTC file" >&2
}

ensure_pg_user() {
  if [ "$(id -u)" = 0 ] && ! id "$pg_user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
  fi
}

run_pg() { if [ "$(id -u)" = 0 ]; then su -s /bin/sh "$pg_user" -c "$*"; else sh -c "$*"; fi; }

start() {
  ensure_packages
  ensure_pg_user
  mkdir -p "$dir"
  chmod 755 "$dir"
  local bin; bin=$(pg_bin)
  local pg_port redis_port; pg_port=$(free_port); redis_port=$(free_port)
  mkdir -p "$dir/pg"
  [ "$(id -u)" = 0 ] && chown "$pg_user" "$dir/pg"
  run_pg "$bin/initdb -D $dir/pg/data -U ias -A trust -E UTF8 --locale=C.UTF-8 >$dir/pg/initdb.log 2>&1"
  run_pg "$bin/pg_ctl -D $dir/pg/data -l $dir/pg/server.log -w -t 30 start -o '-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200' >/dev/null"
  "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U ias -d postgres -qc "CREATE DATABASE ias_test" >/dev/null
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local cluster_port; cluster_port=$(start_cluster)
  cat >"$dir/env" <<ENV
export TEST_DATABASE_URL=postgresql+psycopg://ias@127.0.0.1:$pg_port/ias_test
export TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0
export TEST_PG_PORT=$pg_port
export TEST_REDIS_PORT=$redis_port
export TEST_PG_DATA=$dir/pg/data
export TEST_PG_BIN=$bin
export TEST_SERVICES_DIR=$dir
export TEST_REDIS_CLUSTER_URL=redis+cluster://127.0.0.1:$cluster_port/0
ENV
  echo "services: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port, Redis Cluster from 127.0.0.1:$cluster_port"
}

# Three masters (no replicas) on loopback, slots spread by redis-cli; prints the first node's port.
start_cluster() {
  local ports=() port bus
  mkdir -p "$dir/cluster"
  for _ in 1 2 3; do
    port=$(free_port); bus=$(free_port)
    mkdir -p "$dir/cluster/$port"
    redis-server --port "$port" --cluster-port "$bus" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/cluster/$port/nodes.conf" --cluster-node-timeout 5000 --save "" \
      --appendonly no --daemonize yes --pidfile "$dir/cluster/$port/redis.pid" \
      --logfile "$dir/cluster/$port/redis.log" --dir "$dir/cluster/$port"
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$dir/cluster/create.log" 2>&1
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break; sleep 0.1
    done
  done
  echo "${ports[0]}"
}

# A hot standby streaming from the test PostgreSQL (read-only, `primary_conninfo` written by -R).
start_replica() {
  # shellcheck disable=SC1091
  . "$dir/env"
  local bin; bin=$(pg_bin)
  local port; port=$(free_port)
  run_pg "$bin/pg_basebackup -h 127.0.0.1 -p $TEST_PG_PORT -U ias -D $dir/pg/replica -R -X stream >$dir/pg/basebackup.log 2>&1"
  run_pg "$bin/pg_ctl -D $dir/pg/replica -l $dir/pg/replica.log -w -t 30 start -o '-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c hot_standby=on -c max_connections=200' >/dev/null"
  cat >>"$dir/env" <<ENV
export TEST_DATABASE_REPLICA_URL=postgresql+psycopg://ias@127.0.0.1:$port/ias_test
export TEST_PG_REPLICA_PORT=$port
ENV
  echo "services: PostgreSQL replica on 127.0.0.1:$port"
}

stop() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  for pidfile in "$dir"/cluster/*/redis.pid; do [ -f "$pidfile" ] && { kill "$(cat "$pidfile")" 2>/dev/null || true; }; done
  if [ -d "$dir/pg/replica" ]; then run_pg "$(pg_bin)/pg_ctl -D $dir/pg/replica -m immediate stop >/dev/null 2>&1" || true; fi
  if [ -d "$dir/pg/data" ]; then run_pg "$(pg_bin)/pg_ctl -D $dir/pg/data -m immediate stop >/dev/null 2>&1" || true; fi
  rm -rf "$dir"
}

case "$action" in
  start) start ;;
  start-replica) start_replica ;;
  stop) stop ;;
  packages) if [ "$dir" = run ]; then ensure_document_font; else ensure_packages; command -v wrk >/dev/null || apt_install wrk; fi ;;
  *) echo "usage: $0 start|start-replica|stop DIR, or $0 packages bench|run" >&2; exit 2 ;;
esac
