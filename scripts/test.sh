#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   generated-code drift check, release build (-Werror), unit tests under ASan+UBSan,
#   a short fuzz run of the request decoders, and the integration tests with real
#   Kafka clients against the ASan+UBSan broker.
# Ends with one line "total: N passed, N failed, N skipped". Exit status 0 only if all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || { echo "total: 0 passed, 1 failed"; exit 1; }

JOBS=$(nproc)
failed=0
passed=0
skipped=0
step() {
  local name=$1; shift
  echo "=== $name: $*"
  if "$@"; then passed=$((passed + 1)); else echo "=== $name FAILED"; failed=$((failed + 1)); fi
}

step gen-check make -s gen-check
step release-build make -s -j"$JOBS" build/release/stratus
step asan-build make -s -j"$JOBS" build/asan/stratus build/asan/unit_tests

# Unit tests print "N passed, N failed"; count them individually.
unit_out=$(ASAN_OPTIONS=detect_leaks=1 build/asan/unit_tests 2>&1); unit_rc=$?
echo "$unit_out" | tail -n 40
unit_line=$(echo "$unit_out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
if [ -n "$unit_line" ]; then
  passed=$((passed + $(echo "$unit_line" | cut -d' ' -f1)))
  failed=$((failed + $(echo "$unit_line" | cut -d' ' -f3)))
fi
[ "$unit_rc" -eq 0 ] || [ -n "$unit_line" ] || failed=$((failed + 1))

fuzz_smoke() {
  # libFuzzer prints a line per new input; keep its log and show the end.
  make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}" > build/fuzz.log 2>&1
  local rc=$?
  tail -n 5 build/fuzz.log
  return $rc
}
mkdir -p build
step fuzz-smoke fuzz_smoke
step test-clients bash scripts/build-test-clients.sh

mkdir -p build
STRATUS_BIN="$PWD/build/asan/stratus" /usr/bin/python3 -m pytest tests/integration -v \
  --junitxml=build/itest.xml -p no:cacheprovider 2>&1 | tail -n 400
counts=$(/usr/bin/python3 - <<'PY'
import xml.etree.ElementTree as ET
try:
    root = ET.parse("build/itest.xml").getroot()
except Exception:
    print("0 1 0"); raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
s = sum(int(x.get("skipped", 0)) for x in suites)
print(t - f - s, f, s)
PY
)
read -r ip ifail iskip <<<"$counts"
passed=$((passed + ip)); failed=$((failed + ifail)); skipped=$((skipped + iskip))
[ "$ip" -gt 0 ] || failed=$((failed + 1))

echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
