/* The `stratus lb` configuration parser: defaults, listeners, options, and errors that
 * name the line. */
#include <stdlib.h>
#include <string.h>

#include "lb/config.h"
#include "test.h"

TEST(lb_config_parses_listeners_and_defaults)
{
        const char *text = "# comment\n"
                           "health_interval_ms 100   # trailing comment\n"
                           "\n"
                           "listener bootstrap 127.0.0.1:9092 127.0.0.1:19092 127.0.0.1:19093 max_connections=5\n"
                           "listener b1 127.0.0.1:9093 127.0.0.1:19092 proxy_protocol=v2 health_check=kafka\n"
                           "proxy_protocol v2\n"
                           "max_connections 77\n";
        struct lb_config cfg;
        char err[512];
        CHECK_EQ(lb_config_parse(text, "t.conf", &cfg, err, sizeof(err)), 0);
        CHECK_EQ(cfg.health_interval_ms, 100);
        CHECK_EQ(cfg.health_rise, 2);
        CHECK(strcmp(cfg.admin, "127.0.0.1:9901") == 0);
        CHECK_EQ(cfg.nlisteners, 2);
        CHECK(strcmp(cfg.listeners[0].name, "bootstrap") == 0);
        CHECK_EQ(cfg.listeners[0].ntargets, 2);
        CHECK_EQ(cfg.listeners[0].max_connections, 5);
        CHECK(cfg.listeners[0].proxy_v2);       /* the file's default, given after the line */
        CHECK_EQ(cfg.listeners[0].check, LB_CHECK_TCP);
        CHECK_EQ(cfg.listeners[1].max_connections, 77);
        CHECK_EQ(cfg.listeners[1].check, LB_CHECK_KAFKA);
        CHECK(lb_addr_equal(&cfg.listeners[0].targets[0], &cfg.listeners[1].targets[0]));
        lb_config_free(&cfg);
        CHECK_EQ(lb_config_parse("admin off\n", "t.conf", &cfg, err, sizeof(err)), 0);
        CHECK(cfg.admin == NULL);
        CHECK_EQ(cfg.nlisteners, 0);
        lb_config_free(&cfg);
}

static int parse_err(const char *text, char *err, size_t len)
{
        struct lb_config cfg;
        int rc = lb_config_parse(text, "f.conf", &cfg, err, len);
        if (rc == 0)
                lb_config_free(&cfg);
        return rc;
}

TEST(lb_config_errors_name_the_line)
{
        char err[512];
        CHECK(parse_err("listener a 127.0.0.1:1 127.0.0.1:2\nlistener b 127.0.0.1:99999 127.0.0.1:2\n", err,
                        sizeof(err)) < 0);
        CHECK(strstr(err, "f.conf:2:") && strstr(err, "99999"));
        CHECK(parse_err("\n\nbogus 1 2\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "f.conf:3:") && strstr(err, "unknown directive \"bogus\""));
        CHECK(parse_err("listener a 127.0.0.1:1 127.0.0.1:2\nlistener a 127.0.0.1:3 127.0.0.1:2\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "f.conf:2:") && strstr(err, "already used on line 1"));
        CHECK(parse_err("listener a 127.0.0.1:1 127.0.0.1:2\nlistener b 127.0.0.1:1 127.0.0.1:2\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "already bound"));
        CHECK(parse_err("listener a 127.0.0.1:1\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "f.conf:1:"));
        CHECK(parse_err("listener a 127.0.0.1:0 127.0.0.1:2\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "port 0"));
        CHECK(parse_err("listener a 127.0.0.1:1 127.0.0.1:2 127.0.0.1:2\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "twice"));
        CHECK(parse_err("listener a 127.0.0.1:1 127.0.0.1:2 weight=3\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "unknown option"));
        CHECK(parse_err("listener bad/name 127.0.0.1:1 127.0.0.1:2\n", err, sizeof(err)) < 0);
        CHECK(parse_err("health_rise 0\n", err, sizeof(err)) < 0);
        CHECK(strstr(err, "health_rise"));
        CHECK(parse_err("health_check http\n", err, sizeof(err)) < 0);
        CHECK(parse_err("listener a 127.0.0.1:1 nohost\n", err, sizeof(err)) < 0);
        CHECK(parse_err("connect_timeout_ms 12abc\n", err, sizeof(err)) < 0);
}
