#!/usr/bin/env bash
# Builds the compiled test clients the integration tests drive:
#   build/clients/sarama_member   consumer-group member on sarama 1.22.1
#                                 (tests/integration/clients/go/group_member)
# Offline, in GOPATH mode against Debian's /usr/share/gocode (golang-go and
# golang-github-shopify-sarama-dev; scripts/install-deps.sh installs them).
# Idempotent: does nothing when the binary is newer than its sources.
# Usage: scripts/build-test-clients.sh [-f]      (-f: rebuild even if up to date)
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
[ "${1:-}" = "-f" ] && force=1

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
