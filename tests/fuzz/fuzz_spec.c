/* tests/fuzz/fuzz_spec.c: libFuzzer target: any bytes as the spec.json the agent reads
 * (rundir_spec_parse, what rundir_spec_read runs on the file), and as a result.json. What
 * parses must hold only what the agent can act on: instants within 0..9999, exactly one of
 * argv and shell, absolute paths where the format says so; what does not, must say why. */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rundir/rundir.h"
#include "util/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether P is relative and has no ".." component. */
static int
stays_inside(const char *p)
{
	if (p[0] == '/')
		return 0;
	for (const char *c = p; *c != '\0';) {
		size_t n = strcspn(c, "/");

		if (n == 2 && c[0] == '.' && c[1] == '.')
			return 0;
		c += n + (c[n] == '/');
	}
	return 1;
}

static void
check_spec(const struct rundir_spec *s)
{
	char iso[32];

	assert(s->version >= 1 && s->version <= RUNDIR_VERSION);
	assert(s->run_id >= 0 && s->job != NULL);
	assert(s->scheduled_at >= 0 && s->scheduled_at <= RUNDIR_TIME_MAX);
	assert(rundir_iso8601(s->scheduled_at, iso, sizeof(iso)) == 0);
	assert(strlen(iso) == 20 && iso[4] == '-' && iso[19] == 'Z');
	assert(isfinite(s->not_before) && s->not_before >= 0 &&
	       s->not_before <= (double)RUNDIR_TIME_MAX);
	assert((s->argv == NULL) != (s->shell == NULL));
	if (s->argv != NULL) {
		assert(s->argv[0] != NULL);
		for (char **a = s->argv; *a != NULL; a++)
			(void)strlen(*a);
	}
	for (size_t i = 0; i < s->nenv; i++)
		assert(s->env[i].name[0] != '\0' && strchr(s->env[i].name, '=') == NULL &&
		       s->env[i].value != NULL);
	assert(s->timeout >= 0 && s->kill_grace >= 0);
	assert(s->state_dir == NULL || s->state_dir[0] == '/');
	assert(s->source.mirror == NULL || s->source.archive == NULL);
	if (s->source.mirror != NULL || s->source.archive != NULL) {
		const char *p = s->source.mirror != NULL ? s->source.mirror : s->source.archive;

		assert(p[0] == '/' && s->source.commit != NULL);
		assert(s->state_dir != NULL);
	}
	assert(isfinite(s->clock_offset) && fabs(s->clock_offset) <= (double)RUNDIR_TIME_MAX);
	if (s->runtime.requirements != NULL) {
		assert(s->runtime.requirements[0] != '\0' && s->runtime.interpreter != NULL &&
		       s->runtime.interpreter[0] != '\0');
		assert(s->state_dir != NULL);
	}
	assert(s->workdir == NULL || stays_inside(s->workdir));
}

static int
instant_ok(double t)
{
	return isfinite(t) && t >= 0 && t <= (double)RUNDIR_TIME_MAX;
}

static void
check_result(const struct rundir_result *r)
{
	const double phases[] = { r->source_seconds, r->runtime_seconds, r->exec_seconds };

	assert(r->version >= 1);
	assert(rundir_outcome_name(r->outcome) != NULL);
	assert(instant_ok(r->started_at) && instant_ok(r->ended_at));
	assert(instant_ok(r->wall_seconds) && instant_ok(r->cpu_user_seconds) &&
	       instant_ok(r->cpu_system_seconds));
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		assert(phases[i] == -1 || instant_ok(phases[i]));
	assert(r->exit_code >= -1 && r->exit_code <= 255);
	assert(r->signal >= 0 && r->signal <= 128);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rundir_spec s;
	struct rundir_result r;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = rundir_spec_parse((const char *)data, size, "spec.json", &s, &d);
	if (rc == 0) {
		assert(diag_nerrors(&d) == 0);
		check_spec(&s);
	} else {
		assert(rc == -EINVAL && diag_nerrors(&d) > 0);
		assert(s.job == NULL && s.argv == NULL && s.env == NULL); /* nothing to free */
	}
	rundir_spec_free(&s);
	diag_free(&d);

	diag_init(&d);
	rc = rundir_result_parse((const char *)data, size, "result.json", &r, &d);
	if (rc == 0) {
		assert(diag_nerrors(&d) == 0);
		check_result(&r);
	} else {
		assert(rc == -EINVAL && diag_nerrors(&d) > 0);
	}
	rundir_result_free(&r);
	diag_free(&d);
	return 0;
}
