#!/usr/bin/env bash
# The whole product in one go: installs what is missing, builds, runs `stratus up` in the
# background (control-plane broker, mothership, local satellite; state in $DATA), creates
# a logical Kafka cluster and an API key with the CLI, produces and consumes with kcat
# over SASL PLAIN through the cluster's bootstrap address, deletes the cluster and stops.
#   DATA=/tmp/stratus-demo scripts/demo.sh     to choose the data dir (default ./stratus-data)
#   KEEP=1 scripts/demo.sh                     to leave `stratus up` running at the end
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-$PWD/stratus-data}
bash scripts/install-deps.sh
make -s -j"$(nproc)" build/release/stratus
BIN=$PWD/build/release/stratus
mkdir -p "$DATA"
log=$DATA/up.out

"$BIN" up --data "$DATA" >"$log" 2>&1 &
up_pid=$!
stop() { kill -INT "$up_pid" 2>/dev/null && wait "$up_pid" || true; }
trap 'stop' INT TERM
trap '[ "${KEEP:-0}" = 1 ] || stop' EXIT
for _ in $(seq 600); do
  grep -q "Stratus is up" "$log" && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$log"; echo "stratus up exited; logs in $DATA/logs" >&2; exit 1; }
  sleep 0.1
done
grep -q "Stratus is up" "$log" || { cat "$log"; echo "stratus up not ready in 60 s; logs in $DATA/logs" >&2; exit 1; }
cat "$log"

field() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$1"; }

echo "== stratus cluster create demo --region local ... --wait"
cluster=$("$BIN" cluster create demo --region local --ingress 10 --egress 30 --partitions 10 --wait --output json)
id=$(field id <<<"$cluster")
bootstrap=$(field status.bootstrap <<<"$cluster")
echo "   $id is running, bootstrap $bootstrap"
echo "== stratus api-key create --cluster $id"
key_json=$("$BIN" api-key create --cluster "$id" --output json)
key=$(field key <<<"$key_json")
secret=$(field secret <<<"$key_json")
echo "   key $key (the secret is shown once; here it goes straight to kcat)"

sasl=(-b "$bootstrap" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN
      -X "sasl.username=$key" -X "sasl.password=$secret")
echo "== produce 3 keyed records to topic 'greetings' with kcat"
printf 'user-1:signed up\nuser-2:placed an order\nuser-1:logged out\n' | kcat "${sasl[@]}" -P -t greetings -K:
echo "== consume them back"
kcat "${sasl[@]}" -C -t greetings -o beginning -e -q -f '  offset %o  key %k  value %s\n'

"$BIN" cluster list
if [ "${KEEP:-0}" = 1 ]; then
  echo
  echo "stratus up keeps running (pid $up_pid, data in $DATA). Try:"
  echo "  $BIN cluster describe $id"
  echo "  kcat ${sasl[*]} -L"
  echo "Stop it with: kill -INT $up_pid"
  exit 0
fi
echo "== stratus cluster delete $id --wait"
"$BIN" cluster delete "$id" --wait
echo "== stopping stratus up"
