/* bus_probe: drives src/bus/bus.h on a real loop for tests/integration/test_bus.py.
 *   bus_probe --bootstrap HOST:PORT [--client-id ID]
 * Reads commands from stdin (one a line, read by the loop), prints JSON events on stdout
 * (one a line, flushed at once); logs go to stderr.
 *   subscribe TOPIC                 -> {"event":"subscribed","topic","rc"}
 *   ensure TOPIC PARTITIONS         -> {"event":"ensured","topic","rc","error"}  (compacted)
 *   produce TOPIC KEY VALUE         -> {"event":"queued","rc"}    (VALUE "-" is a tombstone)
 *   produce_many TOPIC N PREFIX     -> {"event":"queued","rc","n"} keys k<i>, values PREFIX<i>
 *   flush MS                        -> {"event":"flushed","rc"}
 *   stats                           -> {"event":"stats","pending","failures"}
 *   quit (or end of stdin)          -> bus_free (flushes up to 5 s), {"event":"bye"}, exit 0
 * Asynchronous events: {"event":"message","topic","key","value" (null: tombstone),"offset"}
 * and {"event":"caught_up","topic"}. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "bus/bus.h"
#include "loop/loop.h"

struct probe {
        struct loop *loop;
        struct bus *bus;
        struct buf in;
};

static void emit(json_t *ev)
{
        char *s = json_dumps(ev, JSON_COMPACT);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(ev);
}

static void on_message(void *arg, const char *topic, const char *key, size_t key_len, const char *value,
                       size_t value_len, int64_t offset)
{
        emit(json_pack("{s:s, s:s, s:s%, s:o, s:I}", "event", "message", "topic", topic, "key", key, key_len,
                       "value", value ? json_stringn(value, value_len) : json_null(), "offset",
                       (json_int_t)offset));
}

static void on_caught_up(void *arg, const char *topic)
{
        emit(json_pack("{s:s, s:s}", "event", "caught_up", "topic", topic));
}

static void command(struct probe *pr, char *line)
{
        char *save = NULL;
        char *cmd = strtok_r(line, " ", &save);
        if (!cmd)
                return;
        char *a1 = strtok_r(NULL, " ", &save);
        char *a2 = strtok_r(NULL, " ", &save);
        char *a3 = strtok_r(NULL, "", &save);
        if (strcmp(cmd, "subscribe") == 0 && a1) {
                int rc = bus_subscribe(pr->bus, a1, on_message, on_caught_up, pr);
                emit(json_pack("{s:s, s:s, s:i}", "event", "subscribed", "topic", a1, "rc", rc));
        } else if (strcmp(cmd, "ensure") == 0 && a1 && a2) {
                char err[256] = "";
                const char *configs[] = { "cleanup.policy", "compact", NULL };
                int rc = bus_ensure_topic(pr->bus, a1, atoi(a2), configs, 10000, err, sizeof(err));
                emit(json_pack("{s:s, s:s, s:i, s:s}", "event", "ensured", "topic", a1, "rc", rc, "error", err));
        } else if (strcmp(cmd, "produce") == 0 && a1 && a2 && a3) {
                bool tomb = strcmp(a3, "-") == 0;
                int rc = bus_produce(pr->bus, a1, a2, tomb ? NULL : a3, tomb ? 0 : strlen(a3));
                emit(json_pack("{s:s, s:i}", "event", "queued", "rc", rc));
        } else if (strcmp(cmd, "produce_many") == 0 && a1 && a2 && a3) {
                int n = atoi(a2), rc = 0;
                for (int i = 0; i < n && rc == 0; i++) {
                        char key[32], value[256];
                        snprintf(key, sizeof(key), "k%d", i);
                        int len = snprintf(value, sizeof(value), "%s%d", a3, i);
                        rc = bus_produce(pr->bus, a1, key, value, (size_t)len);
                }
                emit(json_pack("{s:s, s:i, s:i}", "event", "queued", "rc", rc, "n", n));
        } else if (strcmp(cmd, "flush") == 0 && a1) {
                int rc = bus_flush(pr->bus, atoi(a1));
                emit(json_pack("{s:s, s:i}", "event", "flushed", "rc", rc));
        } else if (strcmp(cmd, "stats") == 0) {
                emit(json_pack("{s:s, s:I, s:I}", "event", "stats", "pending", (json_int_t)bus_pending(pr->bus),
                               "failures", (json_int_t)bus_delivery_failures(pr->bus)));
        } else if (strcmp(cmd, "quit") == 0) {
                loop_stop(pr->loop);
        } else {
                emit(json_pack("{s:s, s:s}", "event", "error", "error", "unknown command"));
        }
}

static void on_stdin(struct loop *loop, int fd, uint32_t events, void *arg)
{
        struct probe *pr = arg;
        uint8_t *p = buf_reserve(&pr->in, 65536);
        ssize_t n = read(fd, p, 65536);
        if (n <= 0) {
                if (n < 0 && errno == EINTR)
                        return;
                loop_stop(loop);
                return;
        }
        pr->in.len += (size_t)n;
        for (;;) {
                uint8_t *nl = memchr(pr->in.data, '\n', pr->in.len);
                if (!nl)
                        break;
                size_t len = (size_t)(nl - pr->in.data);
                char *line = strndup((char *)pr->in.data, len);
                buf_consume(&pr->in, len + 1);
                command(pr, line);
                free(line);
        }
}

int main(int argc, char **argv)
{
        const char *bootstrap = NULL, *client_id = "bus-probe";
        static const struct option opts[] = {
                { "bootstrap", required_argument, NULL, 'b' },
                { "client-id", required_argument, NULL, 'c' },
                { 0 },
        };
        int c;
        while ((c = getopt_long(argc, argv, "b:c:", opts, NULL)) != -1) {
                if (c == 'b')
                        bootstrap = optarg;
                else if (c == 'c')
                        client_id = optarg;
                else
                        return 2;
        }
        struct probe pr = { .loop = loop_new() };
        buf_init(&pr.in);
        char err[256];
        if (bus_new(pr.loop, bootstrap, client_id, &pr.bus, err, sizeof(err)) < 0) {
                emit(json_pack("{s:s, s:s}", "event", "error", "error", err));
                return 1;
        }
        loop_add_fd(pr.loop, 0, LOOP_READABLE, on_stdin, &pr);
        loop_run(pr.loop);
        loop_del_fd(pr.loop, 0);
        bus_free(pr.bus);
        emit(json_pack("{s:s}", "event", "bye"));
        buf_deinit(&pr.in);
        loop_free(pr.loop);
        return 0;
}
