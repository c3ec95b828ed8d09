# Stratus build. Targets:
#   make            release binary build/release/stratus
#   make asan       ASan+UBSan binary build/asan/stratus
#   make test       unit tests under ASan+UBSan (ends with "N passed, N failed")
#   make itest      integration tests with real clients against build/asan/stratus
#   make check      gen-check + test + itest (what CI runs)
#   make gen        regenerate src/kafka/gen/ from the Kafka JSON specs
#   make gen-check  fail if the committed generated code drifted
#   make fuzz       build and run the request-decoding libFuzzer target for FUZZ_SECONDS
#   make bench      build the benchmark tool (bench/README.md)
CC      ?= cc
SPEC    ?= ../shared/kafka-protocol/spec
PYTHON  ?= /usr/bin/python3
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
INC     := -Isrc
LIBS    := -lpthread -lmicrohttpd -ljansson -lssl -lcrypto -lm -lrdkafka -lsqlite3 -lcurl
FUZZ_SECONDS ?= 60

LIB_SRC := $(shell find src -name '*.c' ! -name 'main.c' | sort) $(wildcard src/broker/main.c)
LIB_SRC := $(sort $(LIB_SRC) $(filter-out src/main.c,$(shell find src -name 'main.c')))
MAIN_SRC := src/main.c
TEST_SRC := $(sort $(wildcard tests/unit/*.c))

release_CFLAGS := -O2 -g
asan_CFLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

all: build/release/stratus

define variant
build/$(1)/%.o: %.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CSTD) $$(WARN) $$(INC) $$($(1)_CFLAGS) -MMD -MP -c $$< -o $$@
build/$(1)/libstratus.a: $$(LIB_SRC:%.c=build/$(1)/%.o)
	@rm -f $$@
	ar rcs $$@ $$^
build/$(1)/stratus: build/$(1)/src/main.o build/$(1)/libstratus.a
	$$(CC) $$($(1)_CFLAGS) -o $$@ $$^ $$(LIBS)
build/$(1)/unit_tests: $$(TEST_SRC:%.c=build/$(1)/%.o) build/$(1)/libstratus.a
	$$(CC) $$($(1)_CFLAGS) -o $$@ $$^ $$(LIBS)
endef
# The OpenAPI document is embedded with .incbin, which the compiler's dependency files miss.
build/release/src/mothership/openapi.o build/asan/src/mothership/openapi.o: src/mothership/openapi.json
$(eval $(call variant,release))
$(eval $(call variant,asan))
build/asan/tests/%.o build/release/tests/%.o: INC += -Itests/unit

asan: build/asan/stratus

# A TEST() missing from tests/unit/test_list*.h would never run.
test: build/asan/unit_tests
	@missing=$$(for t in $$(sed -n 's/^TEST(\([a-z0-9_]*\))$$/\1/p' tests/unit/*.c); do \
	    grep -q "^TEST_ENTRY($$t)" tests/unit/test_list*.h || echo "$$t"; done); \
	    if [ -n "$$missing" ]; then echo "unit tests not in tests/unit/test_list*.h:" $$missing; exit 1; fi
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/asan/unit_tests

itest: build/asan/stratus
	STRATUS_BIN=$(CURDIR)/build/asan/stratus $(PYTHON) tests/integration/run.py

check: gen-check test itest

gen:
	$(PYTHON) tools/kafka_codegen.py --spec $(SPEC) --apis tools/kafka_apis.txt --out src/kafka/gen
	$(PYTHON) src/psc/gen_policy.py

gen-check:
	$(PYTHON) tools/kafka_codegen.py --spec $(SPEC) --apis tools/kafka_apis.txt --out src/kafka/gen --check
	$(PYTHON) src/psc/gen_policy.py --check

FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
build/fuzz/fuzz_request: tests/fuzz/fuzz_request.c $(LIB_SRC)
	@mkdir -p build/fuzz
	clang $(CSTD) $(WARN) $(INC) $(FUZZ_CFLAGS) -o $@ $^ $(LIBS)

fuzz: build/fuzz/fuzz_request
	@mkdir -p build/fuzz/corpus
	build/fuzz/fuzz_request -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -artifact_prefix=build/fuzz/ build/fuzz/corpus tests/fuzz/seeds tests/unit/golden

clean:
	rm -rf build

.PHONY: all asan test itest check gen gen-check fuzz clean bench
-include $(shell find build -name '*.d' 2>/dev/null)

# Benchmark load tools (bench/README.md); bench/run.py runs the whole benchmark and
# bench/group_run.py the consumer-group one. group_bench compiles in the protocol codecs.
GROUP_BENCH_SRC := src/kafka/wire.c src/kafka/api.c src/kafka/errors.c src/kafka/gen/messages.c \
                   src/kafka/gen/api_table.c src/base/buf.c src/base/alloc.c
bench: build/bench/stratus_bench build/bench/group_bench build/bench/lb_bench build/bench/copy_probe
build/bench/stratus_bench: bench/stratus_bench.c
	@mkdir -p build/bench
	$(CC) $(CSTD) $(WARN) -O2 -g -o $@ $< -lrdkafka -lpthread
build/bench/group_bench: bench/group_bench.c $(GROUP_BENCH_SRC) $(wildcard src/kafka/*.h src/kafka/gen/*.h src/base/*.h)
	@mkdir -p build/bench
	$(CC) $(CSTD) $(WARN) $(INC) -O2 -g -o $@ $(filter %.c,$^)
build/bench/lb_bench: bench/lb_bench.c
	@mkdir -p build/bench
	$(CC) $(CSTD) $(WARN) -O2 -g -o $@ $< -lpthread
build/bench/copy_probe: bench/copy_probe.c src/base/crc32c.c src/base/crc32c.h
	@mkdir -p build/bench
	$(CC) $(CSTD) $(WARN) $(INC) -O2 -g -o $@ bench/copy_probe.c src/base/crc32c.c -lpthread
