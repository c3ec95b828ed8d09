#!/usr/bin/env bash
# Builds the compiled test clients the integration tests drive:
#   build/clients/bus_probe       drives src/bus (tests/integration/clients/bus_probe.c),
#                                 linked with build/asan/libstratus.a (make asan first)
#   build/clients/sarama_member   consumer-group member on sarama 1.22.1
#                                 (tests/integration/clients/go/group_member)
# Offline, in GOPATH mode against Debian's /usr/share/gocode (golang-go and
# golang-github-shopify-sarama-dev; scripts/install-deps.sh installs them).
# Idempotent: does nothing when the binary is newer than its sources.
# Usage: scripts/build-test-clients.sh [-f] [bus_probe|sarama_member]
#        (-f: rebuild even if up to date; a name: build only that client)
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
[ "${1:-}" = "-f" ] && { force=1; shift; }
only=${1:-}

# bus_probe: C against the ASan library, with the same sanitizer flags.
if [ -z "$only" ] || [ "$only" = bus_probe ]; then
  lib=build/asan/libstratus.a
  probe_src=tests/integration/clients/bus_probe.c
  probe=build/clients/bus_probe
  if [ ! -f "$lib" ]; then
    echo "build-test-clients: $lib missing; run 'make asan' first" >&2
    exit 1
  fi
  if [ "$force" = 1 ] || [ ! -x "$probe" ] || [ "$probe_src" -nt "$probe" ] || [ "$lib" -nt "$probe" ]; then
    mkdir -p build/clients
    echo "build-test-clients: cc $probe"
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Isrc -O1 -g \
      -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
      -o "$probe.tmp" "$probe_src" "$lib" \
      -lpthread -lmicrohttpd -ljansson -lssl -lcrypto -lm -lrdkafka -lsqlite3 -lcurl
    mv -f "$probe.tmp" "$probe"
  fi
  [ "$only" = bus_probe ] && exit 0
fi

src=tests/integration/clients/go/group_member
out=build/clients/sarama_member
sarama=/usr/share/gocode/src/github.com/Shopify/sarama

if ! command -v go >/dev/null; then
  echo "build-test-clients: 'go' not found; install golang-go (scripts/install-deps.sh)" >&2
  exit 1
fi
if [ ! -d "$sarama" ]; then
  echo "build-test-clients: sarama not found at $sarama;" \
       "install golang-github-shopify-sarama-dev (scripts/install-deps.sh)" >&2
  exit 1
fi

# Up to date when the binary is newer than every source file and the installed sarama.
if [ "$force" = 0 ] && [ -x "$out" ] \
   && [ -z "$(find "$src" "$sarama" -newer "$out" -print -quit)" ]; then
  exit 0
fi

mkdir -p build/clients
echo "build-test-clients: go build $out"
# GO111MODULE=off: GOPATH mode, packages come from /usr/share/gocode only; GOPROXY=off and
# GOFLAGS= make sure nothing is looked up on the network or taken from the environment.
# The cgo flag silences a deprecation warning in Debian's DataDog/zstd binding.
GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= \
  GOCACHE="${GOCACHE:-$PWD/build/go-cache}" \
  CGO_CFLAGS="-O2 -g -Wno-deprecated-declarations" \
  go build -o "$out.tmp" "./$src"
mv -f "$out.tmp" "$out"
