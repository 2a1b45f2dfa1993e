#!/bin/bash
# The container image's HEALTHCHECK (installed as /usr/local/bin/floe-healthcheck): an HTTP
# GET of the broker's admin listener with bash's /dev/tcp, because the runtime image carries
# no HTTP client (no curl, no wget). Exits 0 when the answer's status is 200.
#
# Usage: floe-healthcheck [PATH [HOST:PORT]]
#   PATH       default /health (alive); /ready says whether the broker serves
#   HOST:PORT  default $FLOE_HEALTHCHECK_ADDR, else 127.0.0.1:9644 (the image's http_listen)
set -u
path="${1:-/health}"
addr="${2:-${FLOE_HEALTHCHECK_ADDR:-127.0.0.1:9644}}"
host="${addr%:*}"
port="${addr##*:}"
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$addr" >&3
# The status line: HTTP/1.x 200 OK
read -r -t 5 _version status _reason <&3 || exit 1
[ "$status" = 200 ]
