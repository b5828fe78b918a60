/* tests/fuzz/fuzz_cronexpr.c: libFuzzer target: any bytes as a cron expression; when one
 * parses, ask for its next fire times in UTC and in zones around their DST changes. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/diag.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tz *zones[3]; /* UTC (NULL), Berlin, Lord Howe (30-minute DST) */

static void
walk(const struct cronexpr *ce, const struct tz *z, int64_t t)
{
	for (int i = 0; i < 6; i++) {
		int64_t next;
		int rc = cronexpr_next(ce, z, t, &next);

		if (rc != 0) {
			assert(rc == -ENOENT);
			return;
		}
		assert(next > t);
		assert(next <= CRONEXPR_T_MAX);
		t = next;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t starts[] = {
		1774740000,   /* 2026-03-29 ~00:20 CET, before Berlin springs forward */
		1792886400,   /* 2026-10-25 00:00 UTC, before Berlin falls back */
		1775300000,   /* 2026-04-04, before Lord Howe falls back */
		4102444800,   /* 2100-01-01, footer rules */
		253402000000, /* 9999-12-28, days before the last instant */
	};
	static int loaded;
	struct cronexpr *ce = NULL;
	struct diag_pos at = { "fuzz", 1, 1 };
	struct diag d;
	char *text;
	int rc;

	if (!loaded) {
		loaded = 1;
		if (tz_load("Europe/Berlin", &zones[1]) < 0 ||
		    tz_load("Australia/Lord_Howe", &zones[2]) < 0)
			abort();
	}
	text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	diag_init(&d);
	rc = cronexpr_parse(text, &at, &ce, &d);
	if (rc == 0) {
		assert(ce != NULL && diag_nerrors(&d) == 0);
		for (size_t z = 0; z < 3; z++) {
			for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++)
				walk(ce, zones[z], starts[s]);
		}
	} else {
		assert(rc == -EINVAL && ce == NULL && diag_nerrors(&d) > 0);
	}
	cronexpr_free(ce);
	diag_free(&d);
	free(text);
	return 0;
}
