/* src/exec/exec_create.c: a new run: its row, its code pinned to a commit, its spec.json. The
 * same for `eph run` and for the scheduler, whatever the executor. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/conf.h"
#include "exec/exec.h"
#include "exec/sizing.h"
#include "rundir/rundir.h"
#include "source/source.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

static char *
create_join(const char *dir, const char *rel)
{
	if (rel == NULL)
		return xstrdup(dir);
	if (rel[0] == '/')
		return xstrdup(rel);
	return xasprintf("%s/%s", dir, rel);
}

/* Fills SPEC (owning every member) for run ID of job J, whose code is PIN and whose memory
 * limit was decided as MEMORY. */
static void
create_spec(const char *state_dir, const struct conf *c, const struct conf_job *j, int64_t id,
            const struct exec_new *how, const struct source_pin *pin, uint64_t memory,
            struct rundir_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->version = RUNDIR_VERSION;
	spec->run_id = id;
	spec->job = xstrdup(j->name);
	spec->attempt = how->attempt;
	spec->trigger = xstrdup(store_trigger_name(how->trigger));
	spec->scheduled_at = how->scheduled_at;
	spec->not_before = how->not_before;
	if (j->run != NULL) {
		spec->shell = xstrdup(j->run);
	} else {
		spec->argv = xcalloc(j->command.n + 1, sizeof(char *));
		for (size_t i = 0; i < j->command.n; i++)
			spec->argv[i] = xstrdup(j->command.v[i]);
	}
	spec->env = xcalloc(j->env.n ? j->env.n : 1, sizeof(*spec->env));
	for (size_t i = 0; i < j->env.n; i++) {
		const char *eq = strchr(j->env.v[i], '=');

		if (eq == NULL)
			continue;
		spec->env[spec->nenv].name = xstrndup(j->env.v[i], (size_t)(eq - j->env.v[i]));
		spec->env[spec->nenv].value = xstrdup(eq + 1);
		spec->nenv++;
	}
	/* the secrets' names only: their values come on the agent's stdin (exec_secrets.h) */
	spec->secrets = xcalloc(j->secrets.n + 1, sizeof(*spec->secrets));
	for (size_t i = 0; i < j->secrets.n; i++)
		spec->secrets[spec->nsecrets++] =
		        xstrndup(j->secrets.v[i], strcspn(j->secrets.v[i], "="));
	spec->memory = memory;
	spec->timeout = j->timeout;
	spec->kill_grace = j->kill_grace;
	spec->results_max = j->results_max;
	spec->results = xcalloc(j->results.n + 1, sizeof(*spec->results));
	for (size_t i = 0; i < j->results.n; i++)
		spec->results[spec->nresults++] = xstrdup(j->results.v[i]);
	spec->enforce = RUNDIR_ENFORCE_AUTO;
	spec->state_dir = xstrdup(state_dir);
	if (pin->in_place) {
		spec->cwd = create_join(pin->dir, j->workdir);
	} else {
		spec->commit = xstrdup(pin->commit);
		spec->source.mirror = xstrdup(pin->mirror);
		spec->source.commit = xstrdup(pin->commit);
		spec->source.repo = pin->repo != NULL ? xstrdup(pin->repo) : NULL;
		spec->source.branch = pin->branch != NULL ? xstrdup(pin->branch) : NULL;
		spec->source.keep_worktrees = c->source.keep_worktrees;
		spec->workdir = j->workdir != NULL ? xstrdup(j->workdir) : NULL;
	}
	if (j->requirements != NULL) {
		/* relative to the source root: the worktree (the agent resolves it), or here */
		spec->runtime.requirements = pin->in_place ? create_join(pin->dir, j->requirements)
		                                           : xstrdup(j->requirements);
		spec->runtime.interpreter =
		        xstrdup(j->interpreter != NULL ? j->interpreter : "python3");
	}
}

/* Records run ID as failed before it started, for REASON. */
static int
create_fail(struct store *s, int64_t id, const char *reason)
{
	struct store_run r;
	int rc;

	store_run_init(&r);
	r.state = STORE_FAILED;
	r.reason = xstrdup(reason);
	r.ended_at = rundir_now();
	rc = store_run_finish(s, id, &r, NULL, 0);
	store_run_clear(&r);
	return rc;
}

int
exec_create_row(struct store *s, const struct conf_job *j, const struct exec_new *how, int64_t *id,
                struct diag *d)
{
	struct store_run row;
	struct sizing z;
	int rc;

	*id = 0;
	store_run_init(&row);
	sizing_decide(s, j, how->trigger, how->scheduled_at, how->attempt, &z);
	row.memory_limit = (int64_t)z.limit;
	row.memory_reason = z.reason; /* the row's now */
	row.job = xstrdup(j->name);
	row.trigger = how->trigger;
	row.scheduled_at = how->scheduled_at;
	row.attempt = how->attempt;
	row.jitter = how->jitter;
	row.executor = xstrdup(j->executor != NULL ? j->executor : "local");
	rc = store_run_create(s, &row, id);
	if (rc < 0)
		diag_error(d, (struct diag_pos){ 0 }, "cannot record a run of %s: %s", j->name,
		           store_errmsg(s));
	store_run_clear(&row);
	return rc;
}

int
exec_create_finish(struct store *s, const char *state_dir, const struct conf *c,
                   const struct conf_job *j, const struct exec_new *how, int64_t id,
                   const struct source_pin *pin, const char *source_error, char **dir,
                   struct diag *d)
{
	struct rundir_spec spec;
	struct store_run row;
	char *rundir = NULL;
	int rc;

	*dir = NULL;
	if (pin == NULL) {
		char *reason = rundir_failure_reason(RUNDIR_FAILURE_SOURCE, source_error);

		rc = create_fail(s, id, reason);
		free(reason);
		if (rc < 0) {
			diag_error(d, (struct diag_pos){ 0 }, "cannot record run %lld: %s",
			           (long long)id, store_errmsg(s));
			return rc;
		}
		return 1;
	}
	/* the row as exec_create_row wrote it: its memory limit was decided then */
	if ((rc = store_run_get(s, id, &row)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "cannot read run %lld: %s", (long long)id,
		           store_errmsg(s));
		return rc;
	}
	rundir = xasprintf("%s/runs/%lld", state_dir, (long long)id);
	create_spec(state_dir, c, j, id, how, pin,
	            row.memory_limit > 0 ? (uint64_t)row.memory_limit : 0, &spec);
	if (sizing_profiled(row.memory_reason)) {
		/* room for tracemalloc's own records on top of the limit (docs/profile.md) */
		spec.profile_room = sizing_profile_room(spec.memory);
		if (spec.memory > 0)
			spec.memory += spec.profile_room;
	}
	if ((rc = fsio_mkdirs(rundir, 0700)) < 0 || (rc = rundir_spec_write(rundir, &spec)) < 0) {
		char *reason =
		        xasprintf("cannot write %s/%s: %s", rundir, RUNDIR_SPEC, strerror(-rc));

		diag_error(d, (struct diag_pos){ 0 }, "%s", reason);
		(void)create_fail(s, id, reason);
		free(reason);
		rundir_spec_free(&spec);
		goto out;
	}
	rundir_spec_free(&spec);
	row.id = id;
	row.state = STORE_PROVISIONING;
	free(row.run_dir);
	free(row.log_path);
	free(row.commit_id);
	free(row.warning);
	row.warning = NULL;
	row.run_dir = xstrdup(rundir);
	row.log_path = xasprintf("%s/%s", rundir, RUNDIR_OUTPUT);
	row.commit_id = pin->commit != NULL ? xstrdup(pin->commit) : NULL;
	if (pin->in_place && c->source.repo != NULL)
		row.warning = xasprintf("%s is not a git repository: ran in place, not pinned to a "
		                        "commit",
		                        pin->dir);
	else if (pin->warning != NULL && pin->note != NULL)
		row.warning = xasprintf("%s; %s", pin->warning, pin->note);
	else if (pin->warning != NULL || pin->note != NULL)
		row.warning = xstrdup(pin->warning != NULL ? pin->warning : pin->note);
	rc = store_run_update(s, id, &row);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "cannot record run %lld: %s", (long long)id,
		           store_errmsg(s));
		goto out;
	}
	*dir = rundir;
	rundir = NULL;
out:
	free(rundir);
	store_run_clear(&row);
	return rc;
}

uint64_t
exec_created_memory(struct store *s, int64_t id, uint64_t dflt)
{
	struct store_run row;
	uint64_t m = dflt;

	if (store_run_get(s, id, &row) == 0)
		m = row.memory_limit > 0 ? (uint64_t)row.memory_limit : 0;
	store_run_clear(&row);
	return m;
}

int
exec_create(struct store *s, const char *state_dir, const struct conf *c, const struct conf_job *j,
            const struct exec_new *how, int64_t *id, char **dir, struct diag *d)
{
	struct source_pin pin = { 0 };
	struct diag sd;
	int rc;

	*dir = NULL;
	if ((rc = exec_create_row(s, j, how, id, d)) < 0)
		return rc;
	diag_init(&sd);
	if (source_resolve(state_dir, &c->source, c->dir, &pin, &sd) < 0) {
		char *msg = sd.n > 0 ? diag_format(&sd, 0) : xstrdup("eph: cannot get the code");
		const char *text = strncmp(msg, "eph: ", 5) == 0 ? msg + 5 : msg;

		rc = exec_create_finish(s, state_dir, c, j, how, *id, NULL, text, dir, d);
		free(msg);
	} else {
		rc = exec_create_finish(s, state_dir, c, j, how, *id, &pin, NULL, dir, d);
	}
	source_pin_clear(&pin);
	diag_free(&sd);
	return rc;
}
