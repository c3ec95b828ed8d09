/* Background fsyncs of closed segments. A roll must make the old segment durable (so
 * that recovery after a crash need not scan it), but an fsync of a 1 GiB segment takes
 * from half a second here to many seconds on a slow disk, and on the loop thread it
 * would stall every connection. As Kafka does, the roll hands the sync to a thread and
 * the partition's recovery point (the first offset recovery must check) moves on once
 * it is done.
 *
 * One thread for the process, started by the first job; seals run in submission order,
 * closes (syncer_close) when no seal waits or after every four seals.
 * The API is for the loop thread (syncer_close: any thread); the thread touches only
 * the job. */
#ifndef STRATUS_BROKER_STORAGE_SYNCER_H
#define STRATUS_BROKER_STORAGE_SYNCER_H

#include <stdbool.h>
#include <stdint.h>

struct sync_job;

/* Queues fsyncs of the descriptors <fds> (dup()ed here, so the caller may close its
 * own; -1 entries are skipped), then, if they all succeed, writes <recovery_point> into
 * the file <path> in <dir> atomically (fileio_replace). Returns the job (owned by the
 * caller: free with sync_job_free()). */
struct sync_job *syncer_submit(const int *fds, int nfds, const char *dir, const char *path,
                               int64_t recovery_point);

/* Closes <fd> on the sync thread, after the closes queued before. For the last
 * descriptor of a deleted segment file: that close frees the file's blocks, which takes
 * milliseconds per MiB (a 1 GiB segment: hundreds of ms) and would stall the loop. */
void syncer_close(int fd); /* any thread */

/* Whether the job has finished; then *<err> is 0 or the first negative errno. */
bool sync_job_done(struct sync_job *job, int *err);

/* Waits for the job to finish; returns 0 or its first negative errno. */
int sync_job_wait(struct sync_job *job);

/* Waits for the job if it still runs, then frees it. NULL is fine. */
void sync_job_free(struct sync_job *job);

/* Lets go of the job without waiting for its fsyncs, for a log being deleted: it skips
 * its recovery-point write (waits for it if under way, so that nothing is written into
 * the directory afterwards), and is freed when done (at once if it is). The caller must
 * not use it afterwards. NULL is fine. */
void sync_job_abandon(struct sync_job *job);

#endif
