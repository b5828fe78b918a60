/* src/util/clock.c: the two clocks every component reads. */
#include "util/clock.h"

#include <time.h>

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts); /* cannot fail for these clocks with a valid pointer */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t
clock_real_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

double
clock_real(void)
{
	return (double)clock_ms(CLOCK_REALTIME) / 1000.0;
}
