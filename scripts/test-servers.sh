#!/usr/bin/env bash
# Make sure the local PostgreSQL and MariaDB servers the integration tests use are running and have a
# test database and a TCP login. Idempotent. Point the tests at other servers with SYNC_TEST_PG_URI /
# SYNC_TEST_MYSQL_URI instead (see README, "Running against your own servers").
# Change data capture needs PostgreSQL's wal_level=logical and MariaDB's row binlog: a server started without
# them is restarted once with them (see README, "Change data capture: server settings").
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done; return 1; }

if [ -z "${SYNC_TEST_PG_URI:-}" ]; then
  if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  if wait_port 5432; then
    export PGPASSWORD=postgres
    psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='sync_test'" | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -qc "create database sync_test"
    if [ "$(psql -h 127.0.0.1 -U postgres -tAc 'show wal_level')" != "logical" ] && command -v pg_ctlcluster >/dev/null; then
      psql -h 127.0.0.1 -U postgres -qc "alter system set wal_level = logical"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main restart
      wait_port 5432 || echo "PostgreSQL did not come back after enabling wal_level=logical" >&2
    fi
  else
    echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  fi
fi

if [ -z "${SYNC_TEST_MYSQL_URI:-}" ]; then
  binlog_flags=(--log-bin=mariadb-bin --binlog-format=ROW --binlog-row-image=FULL --server-id=1)
  if port_open 3306 && [ -x /usr/sbin/mariadbd ] \
      && [ "$(mysql -uroot -N -e 'select @@log_bin' 2>/dev/null)" = "0" ]; then
    mysqladmin -uroot shutdown || true
    for _ in $(seq 1 60); do port_open 3306 || break; sleep 0.5; done
  fi
  if ! port_open 3306 && [ -x /usr/sbin/mariadbd ]; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- "${binlog_flags[@]}" || true
  fi
  if wait_port 3306 && command -v mysql >/dev/null; then
    mysql -uroot <<'SQL' || echo "could not prepare the MariaDB test user (need root over the local socket)" >&2
CREATE DATABASE IF NOT EXISTS sync_test;
CREATE USER IF NOT EXISTS 'sync'@'127.0.0.1' IDENTIFIED BY 'sync';
CREATE USER IF NOT EXISTS 'sync'@'localhost' IDENTIFIED BY 'sync';
GRANT ALL ON sync_test.* TO 'sync'@'127.0.0.1';
GRANT ALL ON sync_test.* TO 'sync'@'localhost';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'sync'@'127.0.0.1';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'sync'@'localhost';
SET GLOBAL local_infile = 1;
-- A server started with the binlog on but in STATEMENT or MIXED format: the change capture reads rows.
SET GLOBAL binlog_format = 'ROW';
SET GLOBAL binlog_row_image = 'FULL';
FLUSH PRIVILEGES;
SQL
  else
    echo "MariaDB is not reachable on 127.0.0.1:3306" >&2
  fi
fi
