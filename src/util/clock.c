/* src/util/clock.c: the two clocks every component reads. */
#include "util/clock.h"

#include <math.h>
#include <time.h>

/* clock_real_set_offset's, in ms: subtracted from every real-time read */
static int64_t clock_offset_ms;

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
	return clock_ms(CLOCK_REALTIME) - clock_offset_ms;
}

double
clock_real(void)
{
	return (double)clock_real_ms() / 1000.0;
}

void
clock_real_set_offset(double offset)
{
	double ms = offset * 1000.0;

	/* rounded to the nearest ms without libm; nothing beyond ±10^15 ms (31 700 years) */
	if (!isfinite(ms) || ms > 1e15 || ms < -1e15)
		ms = 0;
	clock_offset_ms = (int64_t)(ms + (ms >= 0 ? 0.5 : -0.5));
}
