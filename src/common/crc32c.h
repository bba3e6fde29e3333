/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every extent and record
 * in a checkpoint. Uses the SSE4.2 crc32 instruction when the CPU has it
 * (several GB/s, so checksumming never limits a checkpoint) and a
 * table-driven fallback otherwise; both give identical results.
 */
#ifndef CR_CRC32C_H
#define CR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (start with 0) over len bytes. */
uint32_t cr_crc32c(uint32_t crc, const void *buf, size_t len);
/* The portable implementation, exposed so tests can compare both. */
uint32_t cr_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
