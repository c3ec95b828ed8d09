/* Unit tests of `stratus lb` (tests/unit/test_lb_config.c). */
TEST_ENTRY(lb_config_parses_listeners_and_defaults)
TEST_ENTRY(lb_config_errors_name_the_line)
