/* Shared between coordinator.c (membership) and offsets.c (committed offsets and the
 * store); not part of the group module's contract. */
#ifndef STRATUS_BROKER_GROUP_GROUP_IMPL_H
#define STRATUS_BROKER_GROUP_GROUP_IMPL_H

#include "broker/group/group.h"

/* The group <id, len>, created Empty when missing. */
struct group *group_get_or_create(struct group_coordinator *gc, const char *id, size_t len, int64_t now_ms);
/* Frees <group>: members (their waits answered with <error>) and offsets. */
void group_free(struct group *group, int16_t error);
/* Removes a group that is Empty with no offsets and no pending members. */
void group_remove_if_unused(struct group_coordinator *gc, struct group *group);
/* Lowers the next deadline to <deadline_ms>. */
void group_schedule(struct group_coordinator *gc, int64_t deadline_ms);

/* offsets.c: loads the store into <gc>; closes it. */
int offsets_open(struct group_coordinator *gc, const char *dir);
void offsets_close(struct group_coordinator *gc);
/* Persists <group>'s protocol type once it has one (so that offset retention and
 * ListGroups see a consumer group as one after a restart). */
void offsets_store_group_type(struct group_coordinator *gc, struct group *group);
/* Deletes expired offsets (the retention rules of KIP-211) and unused groups. */
void offsets_expire(struct group_coordinator *gc, int64_t now_ms);
/* Frees the offsets map of <group>. */
void offsets_free(struct group *group);

#endif
