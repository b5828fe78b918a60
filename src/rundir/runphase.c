/* src/rundir/runphase.c: a run's phases from events.jsonl and result.json (runphase.h). */
#include "rundir/runphase.h"

#include <stdlib.h>
#include <string.h>

#include "rundir/rundir.h"
#include "util/xalloc.h"

/* PH's phase NAME, added (all unknown) when it has none. NULL for a name that cannot be
 * one. */
static struct runphase *
phase_get(struct runphases *ph, const char *name)
{
	struct runphase *p;
	size_t len = strlen(name);

	if (len == 0 || len > RUNPHASE_NAME_MAX)
		return NULL;
	for (size_t i = 0; i < ph->n; i++)
		if (strcmp(ph->v[i].name, name) == 0)
			return &ph->v[i];
	ph->v = xreallocarray(ph->v, ph->n + 1, sizeof(*ph->v));
	p = &ph->v[ph->n++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, len + 1);
	p->seconds = -1;
	return p;
}

void
runphase_event(struct runphases *ph, const struct rundir_event *e)
{
	struct runphase *p;

	if (strcmp(e->ev, "phase") != 0 || e->phase == NULL || e->state == NULL)
		return;
	if (strcmp(e->state, "start") != 0 && strcmp(e->state, "end") != 0)
		return;
	if ((p = phase_get(ph, e->phase)) == NULL)
		return;
	if (strcmp(e->state, "start") == 0)
		p->started_at = e->t;
	else
		p->ended_at = e->t;
}

void
runphase_result(struct runphases *ph, const struct rundir_result *r)
{
	const char *const names[] = { "source", "runtime", "exec" };
	const double secs[] = { r->source_seconds, r->runtime_seconds, r->exec_seconds };

	for (size_t i = 0; i < 3; i++)
		if (secs[i] >= 0)
			phase_get(ph, names[i])->seconds = secs[i];
}

void
runphases_free(struct runphases *ph)
{
	free(ph->v);
	ph->v = NULL;
	ph->n = 0;
}
