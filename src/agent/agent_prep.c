/* src/agent/agent_prep.c: the agent before the command: its environment, and the phases that
 * prepare the run (`source`: the pinned commit checked out, or unpacked from the archive a
 * remote run was shipped; `runtime`: the venv held).
 *
 * The source and runtime phases run before the loop does, blocking; SIGTERM and SIGINT are
 * blocked meanwhile and watched through a signalfd, so a cancel kills a venv build at once
 * (and is noticed after a checkout). The venv build runs outside the run's memory cgroup: the
 * limit is the command's, and a pip that needs more memory than the job is not the job's OOM. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/agent_int.h"
#include "agent/outlog.h"
#include "agent/venv.h"
#include "rundir/results.h"
#include "rundir/rundir.h"
#include "rundir/treecopy.h"
#include "source/source.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/xalloc.h"

extern char **environ;

/* ---- the command's environment */

static bool
name_is(const char *kv, size_t l, const char *name)
{
	return strlen(name) == l && strncmp(kv, name, l) == 0;
}

/* Whether the inherited KV gives way to ours (EPH_*, spec.env, the venv's). */
static bool
env_overridden(const struct agent *a, const char *kv)
{
	static const char *const ours[] = { "EPH_RUN_ID",       "EPH_JOB",     "EPH_ATTEMPT",
		                            "EPH_SCHEDULED_AT", "EPH_COMMIT",  "EPH_CGROUP_ROOT",
		                            "EPH_ENFORCE",      "EPH_RESULTS", "EPH_PROFILE_DIR",
		                            "EPH_PROFILE_HOOK" };
	const char *eq = strchr(kv, '=');
	size_t l = eq != NULL ? (size_t)(eq - kv) : strlen(kv);

	for (size_t i = 0; i < EPH_ARRAY_LEN(ours); i++)
		if (name_is(kv, l, ours[i]))
			return true;
	if (a->spec.runtime.requirements != NULL &&
	    (name_is(kv, l, "PYTHONHOME") || name_is(kv, l, "VIRTUAL_ENV") ||
	     (a->have_venv && name_is(kv, l, "PATH"))))
		return true;
	for (size_t i = 0; i < a->spec.nenv; i++)
		if (name_is(kv, l, a->spec.env[i].name))
			return true;
	for (size_t i = 0; i < a->nsecrets; i++)
		if (name_is(kv, l, a->secrets[i].name))
			return true;
	return false;
}

/* The commit the run is pinned to, or NULL. */
static const char *
run_commit(const struct agent *a)
{
	return a->spec.commit != NULL ? a->spec.commit : a->spec.source.commit;
}

/* The command's PATH before the venv's bin: spec.env's, else ours; NULL if none. */
static const char *
command_path(const struct agent *a)
{
	for (size_t i = 0; i < a->spec.nenv; i++)
		if (strcmp(a->spec.env[i].name, "PATH") == 0)
			return a->spec.env[i].value;
	return getenv("PATH");
}

/* The command's environment: ours + spec.env + EPH_* (+ the venv's VIRTUAL_ENV and PATH, and no
 * PYTHONHOME, when the run has a runtime); caller frees each string and the array. The venv
 * build gets the same, minus the venv. */
char **
agent_env(const struct agent *a, bool secrets)
{
	size_t n = 0, k = 0;
	char **env, iso[32];

	while (environ[n] != NULL)
		n++;
	/* 8 of ours, 3 of the profiler's, the NULL */
	env = xcalloc(n + a->spec.nenv + a->nsecrets + 12, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (!env_overridden(a, environ[i]))
			env[k++] = xstrdup(environ[i]);
	for (size_t i = 0; i < a->spec.nenv; i++) {
		const char *nm = a->spec.env[i].name;

		if (a->spec.runtime.requirements != NULL &&
		    (strcmp(nm, "PYTHONHOME") == 0 || strcmp(nm, "VIRTUAL_ENV") == 0 ||
		     (a->have_venv && strcmp(nm, "PATH") == 0)))
			continue;
		env[k++] = xasprintf("%s=%s", nm, a->spec.env[i].value);
	}
	if (a->have_venv) {
		const char *path = command_path(a);

		env[k++] = xasprintf("VIRTUAL_ENV=%s", a->venv.path);
		env[k++] = path != NULL && *path != '\0'
		                   ? xasprintf("PATH=%s/bin:%s", a->venv.path, path)
		                   : xasprintf("PATH=%s/bin", a->venv.path);
	}
	(void)rundir_iso8601(a->spec.scheduled_at, iso, sizeof(iso)); /* spec: 0..9999 */
	env[k++] = xasprintf("EPH_RUN_ID=%" PRId64, a->spec.run_id);
	env[k++] = xasprintf("EPH_JOB=%s", a->spec.job);
	env[k++] = xasprintf("EPH_ATTEMPT=%d", a->spec.attempt);
	env[k++] = xasprintf("EPH_SCHEDULED_AT=%s", iso);
	env[k++] = xasprintf("EPH_RESULTS=%s/%s", a->dir, RUNDIR_RESULTS);
	if (run_commit(a) != NULL)
		env[k++] = xasprintf("EPH_COMMIT=%s", run_commit(a));
	for (size_t i = 0; secrets && i < a->nsecrets; i++)
		env[k++] = xasprintf("%s=%s", a->secrets[i].name, a->secrets[i].value);
	if (secrets) /* the command's */
		k = agent_profile_env(a, env, k);
	env[k] = NULL;
	return env;
}

void
agent_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
	free(v);
}

/* ---- the secrets */

/* The value of NAME in the blob B[0..N) ("NAME=VALUE\0" each), or NULL. */
static const char *
blob_find(const char *b, size_t n, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < n;) {
		const char *e = b + i;
		size_t el = strnlen(e, n - i);

		if (el > nl && memcmp(e, name, nl) == 0 && e[nl] == '=')
			return e + nl + 1;
		i += el + 1;
	}
	return NULL;
}

bool
agent_secrets(struct agent *a)
{
	char *b, *why = NULL;
	size_t n = 0;
	ssize_t r;
	int null;

	if (a->spec.nsecrets == 0)
		return true; /* stdin is not ours to read */
	b = xmalloc(RUNDIR_SECRETS_MAX + 1);
	for (;;) {
		r = read(0, b + n, RUNDIR_SECRETS_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == RUNDIR_SECRETS_MAX + 1)
			break;
	}
	if (r < 0)
		why = xasprintf("cannot read them from the agent's standard input: %s",
		                strerror(errno));
	else if (n > RUNDIR_SECRETS_MAX)
		why = xasprintf("more than %u KiB on the agent's standard input",
		                RUNDIR_SECRETS_MAX >> 10);
	/* nothing else reads it: the command's stdin is /dev/null anyway */
	if ((null = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
		(void)dup2(null, 0);
		close(null);
	}
	a->secrets = xcalloc(a->spec.nsecrets, sizeof(*a->secrets));
	a->secret_vals = xcalloc(a->spec.nsecrets, sizeof(*a->secret_vals));
	for (size_t i = 0; why == NULL && i < a->spec.nsecrets; i++) {
		const char *v = blob_find(b, n, a->spec.secrets[i]);

		if (v == NULL || *v == '\0') {
			why = xasprintf("%s was not given to the agent (no value for it on its "
			                "standard input)",
			                a->spec.secrets[i]);
			break;
		}
		a->secrets[i].name = xstrdup(a->spec.secrets[i]);
		a->secrets[i].value = xstrdup(v);
		a->secret_vals[i] = a->secrets[i].value;
		a->nsecrets++;
	}
	explicit_bzero(b, RUNDIR_SECRETS_MAX + 1);
	free(b);
	if (why != NULL) {
		a->failure = RUNDIR_FAILURE_SECRETS;
		a->prep_error = rundir_failure_reason(RUNDIR_FAILURE_SECRETS, why);
		free(why);
		return false;
	}
	return true;
}

/* ---- the source and runtime phases */

/* The venv build's output, into output.log like the command's. */
static void
build_output(void *arg, int stream, const void *p, size_t n)
{
	struct agent *a = arg;

	(void)outlog_feed(&a->log, stream == 0 ? OUTLOG_OUT : OUTLOG_ERR, p, n, clock_real_ms(),
	                  (int64_t)agent_mono_ms());
}

static void
phase_fail(struct agent *a, enum rundir_failure f, struct diag *d, int rc)
{
	/* the message itself: without diag_format's "eph: " (the phase names the source) */
	const char *msg = diag_nerrors(d) > 0 ? d->items[0].msg : strerror(-rc);

	a->failure = f;
	a->prep_error = rundir_failure_reason(f, msg); /* "source: ...", the phase's name */
}

/* Whether a SIGTERM or SIGINT came while the phases ran (consumes it). */
bool
agent_cancel_pending(struct agent *a)
{
	struct signalfd_siginfo si;

	if (a->sfd < 0)
		return false;
	while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		a->prep_cancelled = true;
	return a->prep_cancelled;
}

/* The run's own writable copy of the shared, read-only tree a->wt.path: RUN_DIR/work (one left
 * by an earlier start of the run is made anew). Its path and the seconds the copy took go in
 * F, the source phase's end event. 0, or -errno with a->prep_error set. */
static int
work_copy(struct agent *a, json_t *f)
{
	uint64_t t0 = agent_mono_ms();
	char *failed = NULL;
	int rc;

	a->work = xasprintf("%s/%s", a->dir, RUNDIR_WORK);
	if ((rc = treecopy_remove(a->work)) == 0)
		rc = treecopy(a->wt.path, a->work, &failed);
	if (rc < 0) {
		a->failure = RUNDIR_FAILURE_SOURCE;
		a->prep_error = xasprintf("source: cannot copy %s%s%s into %s: %s", a->wt.path,
		                          failed != NULL ? "/" : "", failed != NULL ? failed : "",
		                          a->work, strerror(-rc));
		free(failed);
		return rc;
	}
	json_object_set_new(f, "work", json_string(a->work));
	json_object_set_new(f, "copy_seconds", json_real((double)(agent_mono_ms() - t0) / 1000.0));
	return 0;
}

static void
phase_source(struct agent *a)
{
	const char *wd = a->spec.workdir;
	uint64_t t0 = agent_mono_ms();
	struct diag d;
	json_t *f;
	int rc;

	if (a->spec.source.mirror == NULL && a->spec.source.archive == NULL) {
		/* in place: cwd as given (it includes the job's workdir) */
		a->cmd_cwd = a->spec.cwd != NULL ? xstrdup(a->spec.cwd) : NULL;
		return;
	}
	f = json_object();
	json_object_set_new(f, "commit", json_string(a->spec.source.commit));
	if (a->spec.source.repo != NULL)
		json_object_set_new(f, "repo", json_string(a->spec.source.repo));
	agent_event(a, "source", "start", rundir_now(), f);
	diag_init(&d);
	if (a->spec.source.archive != NULL) /* a remote run: the commit shipped, no git here */
		rc = source_unpack(a->spec.state_dir, a->spec.source.archive, a->spec.source.commit,
		                   a->spec.source.keep_worktrees, &a->wt, &d);
	else
		rc = source_checkout(a->spec.state_dir, a->spec.source.mirror,
		                     a->spec.source.commit, a->spec.source.keep_worktrees, &a->wt,
		                     &d);
	a->source_s = (double)(agent_mono_ms() - t0) / 1000.0;
	f = json_object();
	json_object_set_new(f, "seconds", json_real(a->source_s));
	if (rc < 0) {
		phase_fail(a, RUNDIR_FAILURE_SOURCE, &d, rc);
		json_object_set_new(f, "error", json_string(a->prep_error));
	} else if ((rc = work_copy(a, f)) < 0) {
		json_object_set_new(f, "error", json_string(a->prep_error));
	} else {
		/* a relative cwd with a source is the workdir too (older specs) */
		if (wd == NULL && a->spec.cwd != NULL && a->spec.cwd[0] != '/')
			wd = a->spec.cwd;
		a->cmd_cwd = wd != NULL && *wd != '\0' && strcmp(wd, ".") != 0
		                     ? xasprintf("%s/%s", a->work, wd)
		                     : xstrdup(a->work);
		json_object_set_new(f, "path", json_string(a->wt.path));
		json_object_set_new(f, "built", json_boolean(a->wt.built));
	}
	agent_event(a, "source", "end", rundir_now(), f);
	diag_free(&d);
}

static void
phase_runtime(struct agent *a)
{
	uint64_t t0 = agent_mono_ms();
	struct venv_opts o = { 0 };
	char **envp;
	struct diag d;
	json_t *f;
	int rc;

	if (a->spec.runtime.requirements == NULL)
		return;
	f = json_object();
	json_object_set_new(f, "interpreter", json_string(a->spec.runtime.interpreter));
	json_object_set_new(f, "requirements", json_string(a->spec.runtime.requirements));
	if (a->spec.runtime.wheels != NULL)
		json_object_set_new(f, "wheels", json_string(a->spec.runtime.wheels));
	agent_event(a, "runtime", "start", rundir_now(), f);
	envp = agent_env(a, false); /* no venv yet, no secrets: the environment pip runs in */
	o.state_dir = a->spec.state_dir;
	o.interpreter = a->spec.runtime.interpreter;
	o.requirements = a->spec.runtime.requirements;
	o.root = a->wt.path != NULL ? a->wt.path : a->spec.cwd;
	o.wheels = a->spec.runtime.wheels; /* offline, from what the scheduler shipped */
	o.envp = envp;
	o.path_env = command_path(a);
	o.out = build_output;
	o.arg = a;
	o.cancel_fd = a->sfd;
	o.timeout_ms = a->spec.timeout * 1000;
	diag_init(&d);
	rc = venv_prepare(&o, &a->venv, &d);
	for (int s = 0; s < 2; s++)
		(void)outlog_flush_partial(&a->log, (enum outlog_stream)s, clock_real_ms(),
		                           (int64_t)agent_mono_ms(), 0);
	(void)outlog_sync(&a->log);
	a->runtime_s = (double)(agent_mono_ms() - t0) / 1000.0;
	f = json_object();
	json_object_set_new(f, "seconds", json_real(a->runtime_s));
	if (rc == -ECANCELED) {
		a->prep_cancelled = true;
	} else if (rc < 0) {
		phase_fail(a, RUNDIR_FAILURE_RUNTIME, &d, rc);
		json_object_set_new(f, "error", json_string(a->prep_error));
	} else {
		a->have_venv = true;
		json_object_set_new(f, "venv", json_string(a->venv.path));
		json_object_set_new(f, "built", json_boolean(a->venv.built));
	}
	agent_event(a, "runtime", "end", rundir_now(), f);
	diag_free(&d);
	agent_strv_free(envp);
}

/* Runs the phases before the command; false when the run ends there (a->prep_error or
 * a->prep_cancelled says why). */
bool
agent_prepare(struct agent *a)
{
	phase_source(a);
	if (a->prep_error != NULL || agent_cancel_pending(a))
		return false;
	phase_runtime(a);
	if (a->prep_error != NULL || agent_cancel_pending(a))
		return false;
	return true;
}
