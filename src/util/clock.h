/* src/util/clock.h: the two clocks every component reads. */
#ifndef EPH_UTIL_CLOCK_H
#define EPH_UTIL_CLOCK_H
#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds: for timeouts and intervals. */
int64_t clock_mono_ms(void);
/* CLOCK_REALTIME in milliseconds since the epoch (UTC). */
int64_t clock_real_ms(void);
/* CLOCK_REALTIME in seconds since the epoch (UTC), to the millisecond: what run records hold. */
double clock_real(void);

#endif
