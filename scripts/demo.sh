#!/usr/bin/env bash
# Installs what is missing, builds, starts a Stratus broker on 127.0.0.1:9092 with its
# data in ./data, produces a few records with kcat and consumes them back, then keeps
# the broker running in the foreground until Ctrl-C (SIGINT stops it cleanly).
#   PORT=19092 DATA=/tmp/stratus scripts/demo.sh    to choose the port and data dir
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-9092}
DATA=${DATA:-$PWD/data}
bash scripts/install-deps.sh
make -s -j"$(nproc)" build/release/stratus
BIN=build/release/stratus

"$BIN" broker --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DATA" &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid' INT TERM
for _ in $(seq 100); do
  if kcat -L -b "127.0.0.1:$PORT" -m 1 >/dev/null 2>&1; then break; fi
  sleep 0.05
done

echo
echo "== produce: 3 keyed records to topic 'demo' with kcat"
printf 'user-1:signed up\nuser-2:placed an order\nuser-1:logged out\n' |
  kcat -P -b "127.0.0.1:$PORT" -t demo -K: -z lz4
echo "== consume them back"
kcat -C -b "127.0.0.1:$PORT" -t demo -o beginning -e -q -f '  offset %o  key %k  value %s\n'
echo
echo "Broker running at 127.0.0.1:$PORT (data in $DATA). Try:"
echo "  kcat -L -b 127.0.0.1:$PORT"
echo "Ctrl-C stops it."
wait $pid
