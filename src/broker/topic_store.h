/* Topic catalog internals shared by broker.c and topic.c (not used by handlers). */
#ifndef STRATUS_BROKER_TOPIC_STORE_H
#define STRATUS_BROKER_TOPIC_STORE_H

#include <stdbool.h>

struct broker;
struct topic;
struct plog_config;

/* Loads every topic in <log.dirs>/.topics and opens its partitions (recovering their
 * active segments when <recover>); removes partition dirs of deleted topics. */
int topics_load(struct broker *broker, bool recover);
/* Closes every partition log and frees the catalog. */
void topics_close(struct broker *broker);
/* The storage configuration of <topic>'s partitions (topic overrides over broker defaults). */
void topic_plog_config(struct broker *broker, const struct topic *topic, struct plog_config *pc);
/* Writes <path> atomically (temp file, fsync, rename, fsync dir). Returns 0 or -errno. */
int write_file_atomic(const char *path, const char *text);

#endif
