#!/usr/bin/env bash
# Installs every Debian and npm package that building and testing Stratus needs.
# Idempotent: packages already present are skipped, so a second run is quick.
# Usage: scripts/install-deps.sh            (run as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  build-essential make pkg-config python3 clang llvm libclang-rt-14-dev
  zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev libssl-dev libmicrohttpd-dev libjansson-dev
  librdkafka-dev libsqlite3-dev libcurl4-openssl-dev kcat python3-confluent-kafka python3-kafka python3-pytest
  nodejs npm procps iproute2 haproxy openssl
  golang-go golang-github-shopify-sarama-dev
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEBS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node/npm may come from outside Debian on some images: accept any working ones.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# kafkajs, an independent JavaScript client used by the integration tests.
if [ ! -d tests/integration/node_modules/kafkajs ]; then
  echo "install-deps: npm install (tests/integration)"
  (cd tests/integration && npm install --no-audit --no-fund --silent)
fi
echo "install-deps: ok"
