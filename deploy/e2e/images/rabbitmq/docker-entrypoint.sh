#!/usr/bin/env bash
# The official rabbitmq image's contract, for the deploy suite's stand-in:
#   RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS / RABBITMQ_DEFAULT_VHOST: the user made on the
#   node's first boot (guest/guest when unset); RABBITMQ_ERLANG_COOKIE: the cluster's shared
#   secret, written to the node's cookie file; config from /etc/rabbitmq/conf.d/*.conf (mounted
#   files included), read in order. Runs the server as the rabbitmq user.
set -euo pipefail

if [ "$1" = rabbitmq-server ] && [ "$(id -u)" = 0 ]; then
  defaults=/etc/rabbitmq/conf.d/11-environment.conf
  : >"$defaults"
  [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER" >>"$defaults"
  [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS" >>"$defaults"
  [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ] && echo "default_vhost = $RABBITMQ_DEFAULT_VHOST" >>"$defaults"
  chown rabbitmq:rabbitmq "$defaults"
  chmod 600 "$defaults"
  mkdir -p /var/lib/rabbitmq
  if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
    cookie_file=/var/lib/rabbitmq/.erlang.cookie
    rm -f "$cookie_file"
    printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$cookie_file"
    chmod 400 "$cookie_file"
  fi
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  # The variable is the file's source; the server and the CLI tools read the file.
  unset RABBITMQ_ERLANG_COOKIE
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi

exec "$@"
