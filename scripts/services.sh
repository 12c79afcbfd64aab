#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on loopback for the test suite: `services.sh start DIR` / `stop DIR`.
set -euo pipefail

action=${1:?start|stop}
dir=${2:?state directory}
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
  cat >"$dir/env" <<ENV
export TEST_DATABASE_URL=postgresql+psycopg://ias@127.0.0.1:$pg_port/ias_test
export TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0
export TEST_PG_PORT=$pg_port
export TEST_REDIS_PORT=$redis_port
export TEST_PG_DATA=$dir/pg/data
export TEST_PG_BIN=$bin
export TEST_SERVICES_DIR=$dir
ENV
  echo "services: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
}

stop() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  if [ -d "$dir/pg/data" ]; then run_pg "$(pg_bin)/pg_ctl -D $dir/pg/data -m immediate stop >/dev/null 2>&1" || true; fi
  rm -rf "$dir"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
