/* src/util/clock.h: the two clocks every component reads. */
#ifndef EPH_UTIL_CLOCK_H
#define EPH_UTIL_CLOCK_H
#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds: for timeouts and intervals. */
int64_t clock_mono_ms(void);
/* CLOCK_REALTIME in milliseconds since the epoch (UTC), minus the real-clock offset
 * (clock_real_set_offset; 0 unless set). */
int64_t clock_real_ms(void);
/* The same in seconds, to the millisecond: what run records hold. */
double clock_real(void);
/* Makes every later clock_real_ms() and clock_real() of this process read CLOCK_REALTIME minus
 * OFFSET seconds (rounded to the millisecond): the real time in another machine's clock when
 * OFFSET is this host's clock minus that one's. Process-wide, set once before the real clock
 * is read for records (the agent: from spec.clock_offset, so that all it writes is in the
 * scheduler's clock); not thread-safe. The monotonic clock is untouched. */
void clock_real_set_offset(double offset);

#endif
