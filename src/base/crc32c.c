/* CRC-32C: the SSE4.2 crc32 instruction when the CPU has it, else slicing-by-8 tables.
 * No well-kept Debian library exports CRC-32C (zlib has only the IEEE polynomial). */
#include "base/crc32c.h"

#include <stdbool.h>
#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u

static uint32_t table[8][256];
static bool have_sse42;

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
        while (len >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                w ^= crc;
                crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
                      table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
                      table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
                      table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
                p += 8;
                len -= 8;
        }
        while (len--)
                crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
        return crc;
}

#if defined(__x86_64__)
/* One crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle, so
 * a single dependency chain uses a third of the unit. Long buffers are cut into three
 * lanes of LANE bytes run side by side, whose CRCs are then joined: the register is
 * linear over GF(2), so CRC(A|B) = shift(CRC(A), |B|) ^ CRC0(B), where shift() feeds
 * |B| zero bytes and CRC0 starts from 0. shift() by a fixed length is itself linear in
 * the 32 register bits, hence one table lookup per register byte. */
#define LANE_LONG 4096
#define LANE_SHORT 256

struct shift_table {
        uint32_t t[4][256];
};
static struct shift_table shift_long, shift_short;

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw1(uint32_t crc, const uint8_t *p, size_t len)
{
        uint64_t c = crc;
        while (len >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                c = __builtin_ia32_crc32di(c, w);
                p += 8;
                len -= 8;
        }
        uint32_t c32 = (uint32_t)c;
        while (len--)
                c32 = __builtin_ia32_crc32qi(c32, *p++);
        return c32;
}

/* The register after <len> zero bytes, for each single set bit; every byte value's
 * entry is the XOR of its bits' columns. */
__attribute__((target("sse4.2"))) static void shift_table_init(struct shift_table *st, size_t len)
{
        uint32_t column[32];
        for (int bit = 0; bit < 32; bit++) {
                uint64_t c = 1u << bit;
                for (size_t i = 0; i < len; i += 8)
                        c = __builtin_ia32_crc32di(c, 0);
                column[bit] = (uint32_t)c;
        }
        for (int k = 0; k < 4; k++)
                for (uint32_t b = 0; b < 256; b++) {
                        uint32_t v = 0;
                        for (int i = 0; i < 8; i++)
                                if (b & (1u << i))
                                        v ^= column[8 * k + i];
                        st->t[k][b] = v;
                }
}

static inline uint32_t shift(const struct shift_table *st, uint32_t c)
{
        return st->t[0][c & 0xff] ^ st->t[1][(c >> 8) & 0xff] ^ st->t[2][(c >> 16) & 0xff] ^ st->t[3][c >> 24];
}

/* Three lanes of <lane> bytes (a multiple of 8) per step while 3 * <lane> bytes remain. */
__attribute__((target("sse4.2"))) static inline uint32_t crc32c_hw3(uint32_t crc, const uint8_t **pp, size_t *lenp,
                                                                     size_t lane, const struct shift_table *st)
{
        const uint8_t *p = *pp;
        size_t len = *lenp;
        while (len >= 3 * lane) {
                uint64_t a = crc, b = 0, c = 0;
                for (size_t i = 0; i < lane; i += 8) {
                        uint64_t wa, wb, wc;
                        memcpy(&wa, p + i, 8);
                        memcpy(&wb, p + lane + i, 8);
                        memcpy(&wc, p + 2 * lane + i, 8);
                        a = __builtin_ia32_crc32di(a, wa);
                        b = __builtin_ia32_crc32di(b, wb);
                        c = __builtin_ia32_crc32di(c, wc);
                }
                crc = shift(st, shift(st, (uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
                p += 3 * lane;
                len -= 3 * lane;
        }
        *pp = p;
        *lenp = len;
        return crc;
}

static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
        crc = crc32c_hw3(crc, &p, &len, LANE_LONG, &shift_long);
        crc = crc32c_hw3(crc, &p, &len, LANE_SHORT, &shift_short);
        return crc32c_hw1(crc, p, len);
}
#endif

static void crc32c_init(void)
{
        for (uint32_t n = 0; n < 256; n++) {
                uint32_t c = n;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
                table[0][n] = c;
        }
        for (uint32_t n = 0; n < 256; n++)
                for (int k = 1; k < 8; k++)
                        table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
#if defined(__x86_64__)
        __builtin_cpu_init();
        have_sse42 = __builtin_cpu_supports("sse4.2");
        if (have_sse42) {
                shift_table_init(&shift_long, LANE_LONG);
                shift_table_init(&shift_short, LANE_SHORT);
        }
#endif
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
        /* Once, whichever thread comes first (the loop, the compaction thread). */
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, crc32c_init);
        crc = ~crc;
#if defined(__x86_64__)
        if (have_sse42)
                return ~crc32c_hw(crc, data, len);
#endif
        return ~crc32c_sw(crc, data, len);
}
