/* CRC-32C: the SSE4.2 crc32 instruction when the CPU has it, else slicing-by-8 tables.
 * No well-kept Debian library exports CRC-32C (zlib has only the IEEE polynomial). */
#include "base/crc32c.h"

#include <stdbool.h>
#include <string.h>

#define POLY 0x82f63b78u

static uint32_t table[8][256];
static bool have_sse42;
static bool ready;

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
#endif
        ready = true;
}

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
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
                                                             size_t len)
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
#endif

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
        if (!ready)
                crc32c_init();
        crc = ~crc;
#if defined(__x86_64__)
        if (have_sse42)
                return ~crc32c_hw(crc, data, len);
#endif
        return ~crc32c_sw(crc, data, len);
}
