/* Unit tests of the PSC module (tests/unit/test_psc.c) and the scheduler
 * (tests/unit/test_scheduler.c). */
TEST_ENTRY(psc_parse_reads_a_partial_psc)
TEST_ENTRY(psc_to_json_is_deterministic_and_round_trips)
TEST_ENTRY(psc_copy_is_deep)
TEST_ENTRY(psc_parse_names_unknown_top_level_fields)
TEST_ENTRY(psc_parse_errors_name_the_json_path)
TEST_ENTRY(psc_tenants_file_is_what_the_broker_loads)
TEST_ENTRY(psc_topic_names)
TEST_ENTRY(psc_status_round_trips_and_names_phases)
TEST_ENTRY(psc_heartbeat_round_trips)
