/* src/daemon/dlog.c: the daemon's log lines. */
#include "daemon/dlog.h"

#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "sched/tz.h"
#include "util/xalloc.h"

static FILE *dlog_out;
static bool dlog_json;

static const char *const dlog_names[] = { "info", "warn", "error" };

void
dlog_setup(FILE *f, bool json)
{
	dlog_out = f;
	dlog_json = json;
}

void
dlog_format_time(int64_t t_ms, char *out, size_t n)
{
	struct tz_tm tm;
	int64_t s = t_ms >= 0 ? t_ms / 1000 : (t_ms - 999) / 1000;

	tz_to_local(NULL, s, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.year, tm.mon, tm.mday, tm.hour,
	         tm.min, tm.sec, (int)(t_ms - s * 1000));
}

void
dlog(enum dlog_level lvl, int64_t run, const char *job, const char *fmt, ...)
{
	FILE *f = dlog_out != NULL ? dlog_out : stderr;
	struct timespec ts;
	char when[40], *msg = NULL;
	va_list ap;
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	dlog_format_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when, sizeof(when));
	va_start(ap, fmt);
	len = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (len < 0)
		abort(); /* out of memory, as xalloc */
	if (dlog_json) {
		json_t *o = json_object();
		char *line;

		json_object_set_new(o, "t", json_string(when));
		json_object_set_new(o, "level", json_string(dlog_names[lvl]));
		if (run > 0)
			json_object_set_new(o, "run", json_integer(run));
		if (job != NULL)
			json_object_set_new(o, "job", json_string(job));
		json_object_set_new(o, "msg", json_string(msg));
		line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
		if (line != NULL)
			fprintf(f, "%s\n", line);
		free(line);
		json_decref(o);
	} else {
		fprintf(f, "%s %s", when, dlog_names[lvl]);
		if (run > 0)
			fprintf(f, " run %lld", (long long)run);
		if (job != NULL)
			fprintf(f, " %s", job);
		fprintf(f, " %s\n", msg);
	}
	fflush(f);
	free(msg);
}
