/* The sync thread: FIFOs of jobs (seals before closes) under one mutex; each job has its own done flag,
 * read under the same mutex, and one condition variable wakes waiters. */
#define LOG_TOPIC "storage"
#include "broker/storage/syncer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/log.h"

#define SYNC_FDS_MAX 4

struct sync_job {
        int fds[SYNC_FDS_MAX];
        int nfds;
        bool borrowed; /* fds are the caller's (synced on its thread): not closed here */
        bool close_only; /* syncer_close(): nothing to sync */
        char *dir, *path;
        int64_t recovery_point;
        bool done;
        bool abandoned; /* the owner let go: no recovery-point write, freed when done */
        bool writing;   /* writing the recovery point: abandoning waits for that */
        int err;
        struct sync_job *next; /* in the queue */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued = PTHREAD_COND_INITIALIZER;   /* a job was added */
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER; /* a job is done */
static struct sync_job *head, *tail;             /* seals, first */
static struct sync_job *close_head, *close_tail; /* syncer_close()s */
#define SEALS_BEFORE_A_CLOSE 4
static int seals_in_a_row; /* the thread's */
static bool started;

static void job_free(struct sync_job *job)
{
        free(job->dir);
        free(job->path);
        free(job);
}

static void run_job(struct sync_job *job)
{
        int err = 0;
        for (int i = 0; i < job->nfds; i++) {
                if (!err && !job->close_only && fsync(job->fds[i]) < 0)
                        err = -errno;
                if (!job->borrowed)
                        close(job->fds[i]);
        }
        pthread_mutex_lock(&lock);
        bool write_point = !err && job->path && !job->abandoned; /* its directory may be gone */
        job->writing = write_point;
        pthread_mutex_unlock(&lock);
        if (write_point) {
                char *text = xasprintf("%" PRId64 "\n", job->recovery_point);
                err = fileio_replace(job->dir, job->path, text, strlen(text));
                free(text);
        }
        pthread_mutex_lock(&lock);
        if (err && !job->abandoned)
                log_error("segment sync failed dir=%s err=%s", job->dir ? job->dir : "-", strerror(-err));
        job->err = err;
        job->done = true;
        bool free_it = job->abandoned;
        pthread_cond_broadcast(&finished);
        pthread_mutex_unlock(&lock);
        if (free_it)
                job_free(job);
}

static void *syncer_main(void *arg)
{
        (void)arg;
        for (;;) {
                pthread_mutex_lock(&lock);
                while (!head && !close_head)
                        pthread_cond_wait(&queued, &lock);
                /* Seals first: a roll may be waiting for one on the loop, while a close
                 * (hundreds of ms for a large deleted file) waits for nobody; but one close
                 * after every few seals, so that deleted files do not keep their blocks
                 * and descriptors while partitions keep rolling. */
                bool seal = head && (!close_head || seals_in_a_row < SEALS_BEFORE_A_CLOSE);
                seals_in_a_row = seal ? seals_in_a_row + 1 : 0;
                struct sync_job **h = seal ? &head : &close_head, **t = seal ? &tail : &close_tail;
                struct sync_job *job = *h;
                *h = job->next;
                if (!*h)
                        *t = NULL;
                pthread_mutex_unlock(&lock);
                run_job(job); /* the owner waits for done before freeing */
        }
        return NULL;
}

/* Queues the job for the thread (started by the first job), or runs it here when the
 * thread cannot start. */
static void enqueue(struct sync_job *job)
{
        pthread_mutex_lock(&lock);
        if (!started) {
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                int rc = pthread_create(&t, &attr, syncer_main, NULL);
                pthread_attr_destroy(&attr);
                if (rc != 0) {
                        pthread_mutex_unlock(&lock);
                        log_warn("sync thread not started, syncing on the calling thread err=%s", strerror(rc));
                        run_job(job);
                        return;
                }
                started = true;
        }
        struct sync_job **h = job->close_only ? &close_head : &head, **t = job->close_only ? &close_tail : &tail;
        if (*t)
                (*t)->next = job;
        else
                *h = job;
        *t = job;
        pthread_cond_signal(&queued);
        pthread_mutex_unlock(&lock);
}

struct sync_job *syncer_submit(const int *fds, int nfds, const char *dir, const char *path,
                               int64_t recovery_point)
{
        struct sync_job *job = xcalloc(1, sizeof(*job));
        job->dir = dir ? xstrdup(dir) : NULL;
        job->path = path ? xstrdup(path) : NULL;
        job->recovery_point = recovery_point;
        int dup_err = 0;
        for (int i = 0; i < nfds && i < SYNC_FDS_MAX && !dup_err; i++) {
                if (fds[i] < 0)
                        continue;
                int fd = dup(fds[i]);
                if (fd < 0)
                        dup_err = -errno;
                else
                        job->fds[job->nfds++] = fd;
        }
        if (dup_err) { /* no descriptor to spare: sync here rather than not at all */
                log_warn("dup failed, syncing on the calling thread dir=%s err=%s", dir ? dir : "-",
                         strerror(-dup_err));
                for (int i = 0; i < job->nfds; i++)
                        close(job->fds[i]);
                job->nfds = 0;
                for (int i = 0; i < nfds && i < SYNC_FDS_MAX; i++)
                        if (fds[i] >= 0)
                                job->fds[job->nfds++] = fds[i];
                job->borrowed = true;
                /* No recovery-point write: queued jobs of older segments may not be done,
                 * and the point must not pass them. The next job moves it on. */
                free(job->path);
                job->path = NULL;
                run_job(job);
                return job;
        }
        enqueue(job);
        return job;
}

void syncer_close(int fd)
{
        struct sync_job *job = xcalloc(1, sizeof(*job));
        job->fds[0] = fd;
        job->nfds = 1;
        job->close_only = true;
        job->abandoned = true; /* nobody waits: freed when done */
        enqueue(job);
}

bool sync_job_done(struct sync_job *job, int *err)
{
        pthread_mutex_lock(&lock);
        bool done = job->done;
        if (done)
                *err = job->err;
        pthread_mutex_unlock(&lock);
        return done;
}

int sync_job_wait(struct sync_job *job)
{
        pthread_mutex_lock(&lock);
        while (!job->done)
                pthread_cond_wait(&finished, &lock);
        int err = job->err;
        pthread_mutex_unlock(&lock);
        return err;
}

void sync_job_free(struct sync_job *job)
{
        if (!job)
                return;
        sync_job_wait(job);
        job_free(job);
}

void sync_job_abandon(struct sync_job *job)
{
        if (!job)
                return;
        pthread_mutex_lock(&lock);
        while (job->writing && !job->done) /* a millisecond: then the directory can go */
                pthread_cond_wait(&finished, &lock);
        bool done = job->done;
        job->abandoned = true;
        pthread_mutex_unlock(&lock);
        if (done)
                job_free(job);
}
