/* A tiny unit-test harness. Each test is TEST(name) { ... } in tests/unit/test_<module>.c
 * and is listed once in tests/unit/test_list.h. CHECK() records a failure with file:line
 * and returns from the test. No sleeps, no network. */
#ifndef STRATUS_TEST_H
#define STRATUS_TEST_H

#include <stdio.h>
#include <string.h>

extern int test_failed;
/* A fresh empty directory for the running test (removed afterwards). */
extern char test_tmpdir[];

#define TEST(name) void test_##name(void)

#define CHECK(cond)                                                                     \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "  CHECK failed: %s (%s:%d)\n", #cond, __FILE__, \
                                __LINE__);                                              \
                        test_failed = 1;                                                \
                        return;                                                         \
                }                                                                       \
        } while (0)

#define CHECK_EQ(a, b)                                                                  \
        do {                                                                            \
                long long a_ = (long long)(a), b_ = (long long)(b);                     \
                if (a_ != b_) {                                                         \
                        fprintf(stderr, "  CHECK_EQ failed: %s == %s (%lld != %lld) (%s:%d)\n", \
                                #a, #b, a_, b_, __FILE__, __LINE__);                    \
                        test_failed = 1;                                                \
                        return;                                                         \
                }                                                                       \
        } while (0)

#endif
