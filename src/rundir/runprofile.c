/* src/rundir/runprofile.c: a run's profile as text (runprofile.h). */
#include "rundir/runprofile.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rundir/rundir.h"
#include "util/units.h"
#include "util/xalloc.h"

/* Keeps the last "profile" or "unprofiled" event. */
static int
last_profile(const struct rundir_event *e, void *arg)
{
	json_t **keep = arg;

	if (strcmp(e->ev, "profile") != 0 && strcmp(e->ev, "unprofiled") != 0)
		return 0;
	json_decref(*keep);
	*keep = json_deep_copy(e->obj);
	return 0;
}

/* Appends the formatted text to *BUF (owned). */
static void
append(char **buf, char *s)
{
	char *n = xasprintf("%s%s", *buf != NULL ? *buf : "", s);

	free(*buf);
	free(s);
	*buf = n;
}

char *
runprofile_text(const char *dir, uint64_t peak, const char *indent)
{
	json_t *ev = NULL, *sites;
	const char *kind;
	char *out = NULL, a[32], b[32];

	if (dir == NULL || rundir_events_foreach(dir, 0, last_profile, &ev, NULL, NULL) != 0 ||
	    ev == NULL)
		goto done;
	kind = json_string_value(json_object_get(ev, "ev"));
	if (kind != NULL && strcmp(kind, "unprofiled") == 0) {
		const char *why = json_string_value(json_object_get(ev, "reason"));

		out = xasprintf("%sunprofiled: %s\n", indent, why != NULL ? why : "unknown");
		goto done;
	}
	if (peak == 0)
		peak = (uint64_t)json_integer_value(json_object_get(ev, "peak_bytes"));
	units_format_size(peak, b, sizeof(b));
	sites = json_object_get(ev, "sites");
	for (size_t i = 0; i < json_array_size(sites); i++) {
		json_t *s = json_array_get(sites, i);
		const char *file = json_string_value(json_object_get(s, "file"));
		const char *fn = json_string_value(json_object_get(s, "function"));

		if (file == NULL)
			continue;
		units_format_size((uint64_t)json_integer_value(json_object_get(s, "bytes")), a,
		                  sizeof(a));
		append(&out, xasprintf("%s%s:%lld in %s: %s of the %s peak\n", indent, file,
		                       (long long)json_integer_value(json_object_get(s, "line")),
		                       fn != NULL ? fn : "?", a, b));
	}
	if (out == NULL)
		out = xasprintf("%sprofiled: no allocation site recorded\n", indent);
done:
	json_decref(ev);
	return out;
}
