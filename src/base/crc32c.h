/* CRC-32C (Castagnoli), the checksum of Kafka record batches (magic 2). */
#ifndef STRATUS_BASE_CRC32C_H
#define STRATUS_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends <crc> (0 to start) over <len> bytes at <p>. */
uint32_t crc32c(uint32_t crc, const void *p, size_t len);

#endif
