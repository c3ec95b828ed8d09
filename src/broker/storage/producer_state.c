/* Idempotent producer state: sequence checks, undo, expiry and snapshot files. */
#include "broker/storage/producer_state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_TOPIC "storage"
#include "base/log.h"

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/fileio.h"
#include "kafka/errors.h"

#define SNAPSHOT_MAGIC "STPS"
#define SNAPSHOT_VERSION 1
#define SNAPSHOT_HEADER_SIZE 20
#define SNAPSHOT_ENTRY_SIZE 19 /* without its batches */
#define SNAPSHOT_BATCH_SIZE 24
#define SNAPSHOT_MAX_BYTES (256 << 20) /* refuse absurd files rather than allocate them */

struct producer_undo_item {
        int64_t producer_id;
        bool existed;               /* false: the append created the entry */
        struct producer_entry prev; /* the entry before the append, when it existed */
};

void producer_state_init(struct producer_state *ps)
{
        ps->entries = NULL;
        ps->count = 0;
        ps->cap = 0;
}

void producer_state_deinit(struct producer_state *ps)
{
        free(ps->entries);
        producer_state_init(ps);
}

void producer_state_clear(struct producer_state *ps)
{
        ps->count = 0;
}

/* Index of <producer_id> in the sorted array, or where it would be inserted. */
static size_t lower_bound(const struct producer_state *ps, int64_t producer_id)
{
        size_t lo = 0, hi = ps->count;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (ps->entries[mid].producer_id < producer_id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id)
{
        size_t i = lower_bound(ps, producer_id);
        if (i < ps->count && ps->entries[i].producer_id == producer_id)
                return &ps->entries[i];
        return NULL;
}

/* Returns the entry of <producer_id>, inserting a zeroed one if absent. */
static struct producer_entry *get_or_insert(struct producer_state *ps, int64_t producer_id)
{
        size_t i = lower_bound(ps, producer_id);
        if (i < ps->count && ps->entries[i].producer_id == producer_id)
                return &ps->entries[i];
        if (ps->count == ps->cap) {
                ps->cap = ps->cap ? ps->cap * 2 : 4;
                ps->entries = xrealloc(ps->entries, ps->cap * sizeof(*ps->entries));
        }
        memmove(&ps->entries[i + 1], &ps->entries[i], (ps->count - i) * sizeof(*ps->entries));
        ps->count++;
        struct producer_entry *e = &ps->entries[i];
        memset(e, 0, sizeof(*e));
        e->producer_id = producer_id;
        return e;
}

static void remove_at(struct producer_state *ps, size_t i)
{
        memmove(&ps->entries[i], &ps->entries[i + 1], (ps->count - i - 1) * sizeof(*ps->entries));
        ps->count--;
}

/* Kafka's DefaultRecordBatch.incrementSequence: sequences wrap to 0 after INT32_MAX. */
static int32_t sequence_add(int32_t seq, int32_t delta)
{
        if (seq > INT32_MAX - delta)
                return delta - (INT32_MAX - seq) - 1;
        return seq + delta;
}

static bool in_sequence(int32_t last_seq, int32_t next_seq)
{
        return (int64_t)next_seq == (int64_t)last_seq + 1 ||
               (next_seq == 0 && last_seq == INT32_MAX);
}

/* Adds a batch to <e>, dropping the oldest beyond PRODUCER_BATCHES_KEPT. */
static void push_batch(struct producer_entry *e, const struct producer_batch *b)
{
        if (e->nbatches == PRODUCER_BATCHES_KEPT) {
                memmove(&e->batches[0], &e->batches[1],
                        (PRODUCER_BATCHES_KEPT - 1) * sizeof(e->batches[0]));
                e->nbatches--;
        }
        e->batches[e->nbatches++] = *b;
}

static bool tracked(const struct record_batch_header *h)
{
        return h->producer_id >= 0 && !(h->attributes & RECORD_ATTR_CONTROL);
}

static void batch_of(const struct record_batch_header *h, int64_t base_offset,
                     struct producer_batch *b)
{
        b->first_seq = h->base_sequence;
        b->last_seq = h->base_sequence >= 0 ? sequence_add(h->base_sequence, h->last_offset_delta)
                                            : h->base_sequence;
        b->first_offset = base_offset;
        b->last_offset = base_offset + h->last_offset_delta;
}

static void save_undo(struct producer_undo *undo, int64_t producer_id,
                      const struct producer_entry *prev)
{
        if (undo->count == undo->cap) {
                undo->cap = undo->cap ? undo->cap * 2 : 2;
                undo->items = xrealloc(undo->items, undo->cap * sizeof(*undo->items));
        }
        struct producer_undo_item *item = &undo->items[undo->count++];
        item->producer_id = producer_id;
        item->existed = prev != NULL;
        if (prev)
                item->prev = *prev;
}

int16_t producer_state_append(struct producer_state *ps, const struct record_batch_header *h,
                              int64_t base_offset, int64_t now_ms, struct producer_undo *undo,
                              bool *duplicate, struct producer_batch *dup)
{
        *duplicate = false;
        if (!tracked(h))
                return KAFKA_NONE;
        struct producer_batch b;
        batch_of(h, base_offset, &b);
        const struct producer_entry *e = producer_state_find(ps, h->producer_id);
        if (e && h->producer_epoch == e->epoch) {
                for (int i = 0; i < e->nbatches; i++) {
                        if (e->batches[i].first_seq == b.first_seq &&
                            e->batches[i].last_seq == b.last_seq) {
                                *duplicate = true;
                                *dup = e->batches[i];
                                return KAFKA_NONE;
                        }
                }
        }
        bool reset = false;
        if (!e) {
                if (h->base_sequence != 0)
                        return KAFKA_UNKNOWN_PRODUCER_ID;
                reset = true;
        } else if (h->producer_epoch < e->epoch) {
                return KAFKA_INVALID_PRODUCER_EPOCH;
        } else if (h->producer_epoch > e->epoch) {
                if (h->base_sequence != 0)
                        return KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
                reset = true;
        } else if (e->nbatches == 0) {
                if (h->base_sequence != 0)
                        return KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
        } else if (!in_sequence(e->batches[e->nbatches - 1].last_seq, h->base_sequence)) {
                return KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
        }
        save_undo(undo, h->producer_id, e);
        struct producer_entry *w = get_or_insert(ps, h->producer_id);
        if (reset) {
                w->epoch = h->producer_epoch;
                w->nbatches = 0;
        }
        push_batch(w, &b);
        w->last_timestamp_ms = now_ms;
        return KAFKA_NONE;
}

void producer_state_replay(struct producer_state *ps, const struct record_batch_header *h,
                           int64_t timestamp_ms)
{
        if (!tracked(h))
                return;
        struct producer_batch b;
        batch_of(h, h->base_offset, &b);
        struct producer_entry *e = get_or_insert(ps, h->producer_id);
        if (e->nbatches == 0 || h->producer_epoch != e->epoch) {
                e->epoch = h->producer_epoch;
                e->nbatches = 0;
        }
        push_batch(e, &b);
        if (timestamp_ms > e->last_timestamp_ms)
                e->last_timestamp_ms = timestamp_ms;
}

void producer_undo_init(struct producer_undo *undo)
{
        undo->items = NULL;
        undo->count = 0;
        undo->cap = 0;
}

void producer_undo_deinit(struct producer_undo *undo)
{
        free(undo->items);
        producer_undo_init(undo);
}

void producer_undo_reset(struct producer_undo *undo)
{
        undo->count = 0;
}

void producer_state_rollback(struct producer_state *ps, struct producer_undo *undo)
{
        while (undo->count > 0) {
                struct producer_undo_item *item = &undo->items[--undo->count];
                size_t i = lower_bound(ps, item->producer_id);
                bool present = i < ps->count && ps->entries[i].producer_id == item->producer_id;
                if (item->existed)
                        *get_or_insert(ps, item->producer_id) = item->prev;
                else if (present)
                        remove_at(ps, i);
        }
}

int producer_state_expire(struct producer_state *ps, int64_t now_ms, int64_t expiration_ms)
{
        if (expiration_ms < 0)
                return 0;
        size_t kept = 0;
        int dropped = 0;
        for (size_t i = 0; i < ps->count; i++) {
                if (now_ms - ps->entries[i].last_timestamp_ms > expiration_ms) {
                        log_debug("producer expired producer_id=%" PRId64,
                                  ps->entries[i].producer_id);
                        dropped++;
                        continue;
                }
                ps->entries[kept++] = ps->entries[i];
        }
        ps->count = kept;
        return dropped;
}

char *producer_snapshot_path(const char *dir, int64_t offset)
{
        return xasprintf("%s/%020" PRId64 ".snapshot", dir, offset);
}

static void put(struct buf *b, const void *p, size_t len)
{
        buf_append(b, p, len);
}

static void put_u8(struct buf *b, uint8_t v)
{
        put(b, &v, 1);
}

static void put_u16(struct buf *b, uint16_t v)
{
        uint8_t p[2];
        store_be16(p, v);
        put(b, p, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
        uint8_t p[4];
        store_be32(p, v);
        put(b, p, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
        uint8_t p[8];
        store_be64(p, v);
        put(b, p, 8);
}

int producer_state_write_snapshot(const struct producer_state *ps, const char *dir,
                                  int64_t offset)
{
        struct buf b;
        buf_init(&b);
        put(&b, SNAPSHOT_MAGIC, 4);
        put_u16(&b, SNAPSHOT_VERSION);
        put_u16(&b, 0);
        put_u64(&b, (uint64_t)offset);
        put_u32(&b, (uint32_t)ps->count);
        for (size_t i = 0; i < ps->count; i++) {
                const struct producer_entry *e = &ps->entries[i];
                put_u64(&b, (uint64_t)e->producer_id);
                put_u16(&b, (uint16_t)e->epoch);
                put_u64(&b, (uint64_t)e->last_timestamp_ms);
                put_u8(&b, e->nbatches);
                for (int j = 0; j < e->nbatches; j++) {
                        put_u32(&b, (uint32_t)e->batches[j].first_seq);
                        put_u32(&b, (uint32_t)e->batches[j].last_seq);
                        put_u64(&b, (uint64_t)e->batches[j].first_offset);
                        put_u64(&b, (uint64_t)e->batches[j].last_offset);
                }
        }
        put_u32(&b, crc32c(0, b.data, b.len));
        char *path = producer_snapshot_path(dir, offset);
        int err = fileio_replace(dir, path, b.data, b.len);
        if (err)
                log_warn("snapshot write failed path=%s err=%s", path, strerror(-err));
        free(path);
        buf_deinit(&b);
        return err;
}

/* Sticky reader over the snapshot bytes. */
struct snap_reader {
        const uint8_t *p;
        size_t left;
        bool failed;
};

static const uint8_t *take(struct snap_reader *r, size_t n)
{
        if (r->failed || r->left < n) {
                r->failed = true;
                return NULL;
        }
        const uint8_t *p = r->p;
        r->p += n;
        r->left -= n;
        return p;
}

static uint8_t get_u8(struct snap_reader *r)
{
        const uint8_t *p = take(r, 1);
        return p ? p[0] : 0;
}

static uint16_t get_u16(struct snap_reader *r)
{
        const uint8_t *p = take(r, 2);
        return p ? load_be16(p) : 0;
}

static uint32_t get_u32(struct snap_reader *r)
{
        const uint8_t *p = take(r, 4);
        return p ? load_be32(p) : 0;
}

static uint64_t get_u64(struct snap_reader *r)
{
        const uint8_t *p = take(r, 8);
        return p ? load_be64(p) : 0;
}

static int parse_snapshot(struct producer_state *ps, const uint8_t *data, size_t len,
                          int64_t offset)
{
        if (len < SNAPSHOT_HEADER_SIZE + 4)
                return -EBADMSG;
        if (crc32c(0, data, len - 4) != load_be32(data + len - 4))
                return -EBADMSG;
        struct snap_reader r = { data, len - 4, false };
        const uint8_t *magic = take(&r, 4);
        uint16_t version = get_u16(&r);
        get_u16(&r);
        int64_t file_offset = (int64_t)get_u64(&r);
        uint32_t count = get_u32(&r);
        if (r.failed || memcmp(magic, SNAPSHOT_MAGIC, 4) != 0 || version != SNAPSHOT_VERSION ||
            file_offset != offset || count > r.left / SNAPSHOT_ENTRY_SIZE)
                return -EBADMSG;
        int64_t prev_id = INT64_MIN;
        for (uint32_t i = 0; i < count && !r.failed; i++) {
                struct producer_entry e;
                memset(&e, 0, sizeof(e));
                e.producer_id = (int64_t)get_u64(&r);
                e.epoch = (int16_t)get_u16(&r);
                e.last_timestamp_ms = (int64_t)get_u64(&r);
                e.nbatches = get_u8(&r);
                if (e.nbatches > PRODUCER_BATCHES_KEPT || e.producer_id < 0 ||
                    (i > 0 && e.producer_id <= prev_id))
                        r.failed = true;
                for (int j = 0; j < e.nbatches && !r.failed; j++) {
                        e.batches[j].first_seq = (int32_t)get_u32(&r);
                        e.batches[j].last_seq = (int32_t)get_u32(&r);
                        e.batches[j].first_offset = (int64_t)get_u64(&r);
                        e.batches[j].last_offset = (int64_t)get_u64(&r);
                }
                if (r.failed)
                        break;
                prev_id = e.producer_id;
                *get_or_insert(ps, e.producer_id) = e;
        }
        if (r.failed || r.left != 0)
                return -EBADMSG;
        return 0;
}

int producer_state_read_snapshot(struct producer_state *ps, const char *dir, int64_t offset)
{
        producer_state_clear(ps);
        char *path = producer_snapshot_path(dir, offset);
        int fd = fileio_open(path, O_RDONLY, 0);
        free(path);
        if (fd < 0)
                return fd;
        int err = 0;
        uint8_t *data = NULL;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                err = -errno;
                goto out;
        }
        if (st.st_size > SNAPSHOT_MAX_BYTES) {
                err = -EBADMSG;
                goto out;
        }
        size_t len = (size_t)st.st_size, got;
        data = xmalloc(len);
        err = fileio_pread(fd, data, len, 0, &got);
        if (!err)
                err = parse_snapshot(ps, data, got, offset);
out:
        if (err)
                producer_state_clear(ps);
        free(data);
        close(fd);
        return err;
}
