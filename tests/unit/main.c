/* Unit-test runner: runs every test in test_list.h (or those whose name contains
 * argv[1]) and ends with "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "test.h"

int test_failed;
char test_tmpdir[256];

#define TEST_ENTRY(name) void test_##name(void);
#include "test_list.h"
#undef TEST_ENTRY

struct test_case {
        const char *name;
        void (*fn)(void);
};

static const struct test_case tests[] = {
#define TEST_ENTRY(name) { #name, test_##name },
#include "test_list.h"
#undef TEST_ENTRY
};

int main(int argc, char **argv)
{
        int passed = 0, failed = 0;
        log_set_level(LOG_ERROR);
        for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
                if (argc > 1 && !strstr(tests[i].name, argv[1]))
                        continue;
                snprintf(test_tmpdir, sizeof(test_tmpdir), "/tmp/stratus-unit-XXXXXX");
                if (!mkdtemp(test_tmpdir)) {
                        perror("mkdtemp");
                        return 2;
                }
                test_failed = 0;
                tests[i].fn();
                char cmd[300];
                snprintf(cmd, sizeof(cmd), "rm -rf %s", test_tmpdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "  could not remove %s\n", test_tmpdir);
                printf("%s %s\n", test_failed ? "FAIL" : "ok  ", tests[i].name);
                if (test_failed)
                        failed++;
                else
                        passed++;
        }
        printf("%d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
}
