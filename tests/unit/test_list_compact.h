/* Log compaction (tests/unit/test_compact.c). */
TEST_ENTRY(compaction_keeps_the_newest_record_of_every_key)
TEST_ENTRY(compaction_is_off_for_delete_policy_and_retention_off_for_compact)
