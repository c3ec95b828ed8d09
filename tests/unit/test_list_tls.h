/* Unit tests of broker/tls (tests/unit/test_tls.c). */
TEST_ENTRY(tls_protocols_parse_and_refuse_old_versions)
TEST_ENTRY(tls_reload_takes_a_good_pair_and_refuses_bad_ones)
