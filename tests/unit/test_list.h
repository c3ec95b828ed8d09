/* Every unit test, once. TEST_ENTRY(name) matches TEST(name) in a tests/unit/test_*.c. */
TEST_ENTRY(crc32c_known_vectors)
TEST_ENTRY(crc32c_long_buffers_match_the_definition)
TEST_ENTRY(wire_varints_round_trip)
TEST_ENTRY(wire_rejects_lengths_past_end)
TEST_ENTRY(wire_arena_budget)
TEST_ENTRY(record_batch_check_detects_corruption)
TEST_ENTRY(response_frame_sizes_with_file_slices)
TEST_ENTRY(record_batch_records_validated)
TEST_ENTRY(codec_round_trip_all_versions)
TEST_ENTRY(codec_populated_produce_and_fetch_round_trip)
TEST_ENTRY(codec_golden_frames_round_trip)
#include "test_list_storage.h"
#include "test_list_group.h"
#include "test_list_lb.h"
#include "test_list_tls.h"
#include "test_list_operator.h"
TEST_ENTRY(bucket_rate_burst_and_debt)
TEST_ENTRY(bucket_reconfigure_keeps_tokens_capped)
TEST_ENTRY(codec_names_map_into_and_out_of_a_namespace)
#include "test_list_store.h"
#include "test_list_psc.h"
#include "test_list_compact.h"
