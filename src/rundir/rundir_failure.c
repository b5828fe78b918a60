/* src/rundir/rundir_failure.c: the failure reasons' names, the one table that result.json's
 * "failure", the store and a run's reason text share (rundir.h). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rundir/rundir.h"
#include "util/attr.h"
#include "util/xalloc.h"

/* The failure reasons' names: the one table (rundir.h) */
static const char *const failure_names[] = {
	[RUNDIR_FAILURE_NONE] = NULL,
	[RUNDIR_FAILURE_SOURCE] = "source",
	[RUNDIR_FAILURE_RUNTIME] = "runtime",
	[RUNDIR_FAILURE_HOST_KEY] = "host key",
	[RUNDIR_FAILURE_PROVISION] = "provision",
	[RUNDIR_FAILURE_SECRETS] = "secrets",
	[RUNDIR_FAILURE_UNPLACED] = "unplaced",
	[RUNDIR_FAILURE_BUDGET] = "budget",
};

_Static_assert(EPH_ARRAY_LEN(failure_names) == RUNDIR_FAILURE_LAST + 1, "a name for each failure");

const char *
rundir_failure_name(enum rundir_failure f)
{
	if ((size_t)f >= EPH_ARRAY_LEN(failure_names))
		return NULL;
	return failure_names[f];
}

int
rundir_failure_parse(const char *name, enum rundir_failure *f)
{
	for (size_t i = RUNDIR_FAILURE_NONE + 1; i < EPH_ARRAY_LEN(failure_names); i++) {
		if (strcmp(name, failure_names[i]) == 0) {
			*f = (enum rundir_failure)i;
			return 0;
		}
	}
	return -EINVAL;
}

char *
rundir_failure_reason(enum rundir_failure f, const char *text)
{
	assert(rundir_failure_name(f) != NULL);
	return xasprintf("%s: %s", rundir_failure_name(f), text);
}

enum rundir_failure
rundir_failure_of_reason(const char *reason)
{
	const char *colon = reason != NULL ? strstr(reason, ": ") : NULL;

	if (colon == NULL)
		return RUNDIR_FAILURE_NONE;
	for (size_t i = RUNDIR_FAILURE_NONE + 1; i < EPH_ARRAY_LEN(failure_names); i++) {
		size_t len = strlen(failure_names[i]);

		if ((size_t)(colon - reason) == len && memcmp(reason, failure_names[i], len) == 0)
			return (enum rundir_failure)i;
	}
	return RUNDIR_FAILURE_NONE;
}
