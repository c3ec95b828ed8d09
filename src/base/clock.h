/* Clocks: monotonic for timeouts, wall for record timestamps. Milliseconds. */
#ifndef STRATUS_BASE_CLOCK_H
#define STRATUS_BASE_CLOCK_H

#include <stdint.h>

int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
int64_t clock_wall_ms(void);

#endif
