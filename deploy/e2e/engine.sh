#!/usr/bin/env bash
# The Docker engine for the real deployment suite (npm run test:deploy), on a machine without a
# registry (/work/shared/DOCKER.md): Debian's docker.io started by hand, its own socket and data
# root, so nothing else on the machine is touched. The data root is kept between runs: it is the
# image cache that makes a warm run fast. Containers, networks and volumes are removed by the
# suite; `stop` stops only a daemon this script started.
#
#   deploy/e2e/engine.sh start    install what is missing, start dockerd if it is not running
#   deploy/e2e/engine.sh stop     stop the dockerd that `start` started (and its bridge)
#   deploy/e2e/engine.sh env      the variables that point the docker and compose CLIs at it
set -euo pipefail

STATE=${SABT_E2E_STATE:-/var/lib/sabt-e2e}
RUN=${SABT_E2E_RUN:-/run/sabt-e2e}
SOCK="unix://$RUN/docker.sock"
CLI="$STATE/cli"

print_env() {
  echo "DOCKER_HOST=$SOCK"
  echo "DOCKER_CONFIG=$CLI"
}

running() { DOCKER_HOST=$SOCK /usr/bin/docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  [ "$(id -u)" -eq 0 ] || { echo "engine: needs root (dockerd, apt-get)" >&2; exit 1; }
  local missing=()
  [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "engine: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  # `docker compose …` on a machine with only compose v1: a CLI plugin that hands over to it.
  mkdir -p "$CLI/cli-plugins"
  cat >"$CLI/cli-plugins/docker-compose" <<'SHIM'
#!/bin/sh
if [ "$1" = docker-cli-plugin-metadata ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"Sabt deploy suite","Version":"1.29-shim","ShortDescription":"docker-compose v1"}'
  exit 0
fi
shift
exec /usr/bin/docker-compose "$@"
SHIM
  chmod +x "$CLI/cli-plugins/docker-compose"
  [ -f "$CLI/config.json" ] || echo '{}' >"$CLI/config.json"

  mkdir -p "$STATE/docker" "$RUN"
  if running; then
    echo "engine: already running on $SOCK"
    return 0
  fi
  # Remember whether docker0 existed and what the firewall held, so `stop` puts back what it found.
  if ip link show docker0 >/dev/null 2>&1; then : >"$RUN/bridge-existed"; else rm -f "$RUN/bridge-existed"; fi
  iptables-save >"$RUN/iptables.before" 2>/dev/null || rm -f "$RUN/iptables.before"
  /usr/sbin/dockerd \
    --host "$SOCK" \
    --data-root "$STATE/docker" \
    --exec-root "$RUN/exec" \
    --pidfile "$RUN/dockerd.pid" \
    >"$RUN/dockerd.log" 2>&1 &
  for _ in $(seq 1 100); do
    running && { echo "engine: dockerd $(cat "$RUN/dockerd.pid") on $SOCK, data in $STATE/docker"; : >"$RUN/started"; return 0; }
    sleep 0.2
  done
  echo "engine: dockerd did not start; its log:" >&2
  tail -30 "$RUN/dockerd.log" >&2
  exit 1
}

stop() {
  [ -f "$RUN/started" ] || { echo "engine: not started by this script, left alone"; return 0; }
  local pid
  pid=$(cat "$RUN/dockerd.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { echo "engine: dockerd $pid ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$pid"; }
  fi
  # dockerd leaves its default bridge, its iptables chains, NAT rules and a FORWARD policy of DROP
  # behind: put back what was there before it started.
  if [ ! -f "$RUN/bridge-existed" ] && ip link show docker0 >/dev/null 2>&1; then ip link delete docker0 || true; fi
  if [ -f "$RUN/iptables.before" ]; then
    iptables-restore <"$RUN/iptables.before" || echo "engine: could not restore the iptables rules"
    rm -f "$RUN/iptables.before"
  fi
  rm -f "$RUN/started"
  echo "engine: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
