/* src/daemon/prepare.c: a run's code resolved off the daemon's loop.
 *
 * Creating a run resolves its source to a commit (source_resolve): a `git fetch` when the
 * mirror's last attempt is older than source.refresh (every run with refresh 0), which may
 * take up to source.fetch_timeout, and local git calls otherwise. None of it runs on the loop:
 * each run with a repository source gets a child, `eph fetch --repo-env EPH_FETCH_REPO
 * --refresh ... --json` (the same source_resolve, the same mirror, lock and state file as a
 * foreground `eph run`), watched with libuv like the fetch of --from-repo (repoconf.c), and
 * its JSON answer finishes the run (dm_prepared). A child, not a thread of libuv's pool: a
 * stop or a cancel ends it at once (SIGTERM: it kills its git's process group and exits,
 * also while it waits for the mirror's lock), where a thread would have to be waited for,
 * and many runs waiting on one hanging fetch hold no pool thread that other work needs. A
 * source run in place (no repository) runs no git, and is resolved on the loop. The child
 * then reads the commit's subject line for the run's mail (--subject: a second line, after
 * the answer the run goes on with), so that the mail, built on the loop when the run ends,
 * needs no `git log` there. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "source/gitrun.h"
#include "source/source.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define PREP_GRACE_MS 2000 /* a dropped child that ignores SIGTERM this long gets SIGKILL */
/* children at once; the others wait their turn (a burst of fires serializes on the mirror's
 * lock anyway) */
#define PREP_MAX      4
#define PREP_ENV      "EPH_FETCH_REPO"

struct dprep {
	struct daemon *dm;
	struct drun *dr;     /* NULL once dropped: the answer is thrown away */
	struct dprep *qnext; /* waiting for a turn (dm->prep_head), not spawned yet */
	bool spawned;        /* counted in dm->nprep until its handles are closed */
	char *repo;          /* the source resolved (conf_source repo, branch, commit): a reload */
	char *branch;        /* that changed it meanwhile makes the run resolve again */
	char *commit;
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t grace;
	struct buf buf;      /* the child's stdout: JSON lines, the answer then the subject */
	int64_t exit_status; /* or -signal */
	int nopen;           /* handles still open */
	bool exited;
	bool answered; /* its first line (or its end without one) was handled */
};

static bool
prep_streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static char *
prep_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

char **
dm_child_env(const char *name, const char *value)
{
	size_t n = 0, k = 0, len = strlen(name);
	char **env;

	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + 2, sizeof(*env));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], name, len) != 0 || environ[i][len] != '=')
			env[k++] = xstrdup(environ[i]);
	env[k] = xasprintf("%s=%s", name, value);
	return env;
}

void
dm_child_env_free(char **env)
{
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* A source with no repository to fetch: none (the jobs file's directory, DIR NULL), a plain
 * directory (DIR), or a missing path (RC < 0): settled here, on the loop, as source_resolve
 * would, without calling it (so no git can run here, whatever the path has become since). */
static void
prep_here(struct daemon *dm, struct drun *dr, const char *dir, int rc)
{
	struct source_pin pin = { 0 };

	if (rc < 0) {
		char *raw = xasprintf("source.repo %s: %s", dm->conf->source.repo, strerror(-rc));
		char *why = gitrun_redact(raw);

		dm_prepared(dm, dr, NULL, why);
		free(why);
		free(raw);
		return;
	}
	pin.in_place = true;
	pin.dir = xstrdup(dir != NULL ? dir : dm->conf->dir);
	dm_prepared(dm, dr, &pin, NULL);
	source_pin_clear(&pin);
}

static void
prep_free(struct dprep *p)
{
	buf_free(&p->buf);
	free(p->repo);
	free(p->branch);
	free(p->commit);
	free(p);
}

/* The child's answer O, its first line: {"commit":..., "mirror":..., ...} or {"error": ...}
 * (NULL: it ended without one). The run goes on (dm_prepared); the child still reads the
 * commit's subject line for it (prep_subject), unless the run ended meanwhile. */
static void
prep_answer(struct dprep *p, json_t *o)
{
	struct daemon *dm = p->dm;
	struct drun *dr = p->dr;
	const struct conf_source *src = &dm->conf->source;
	const char *commit = json_string_value(json_object_get(o, "commit"));
	const char *mirror = json_string_value(json_object_get(o, "mirror"));
	const char *dir = json_string_value(json_object_get(o, "dir"));
	const char *err = json_string_value(json_object_get(o, "error"));
	struct source_pin pin = { 0 };
	char *why = NULL;

	p->answered = true;
	if (!prep_streq(p->repo, src->repo) || !prep_streq(p->branch, src->branch) ||
	    !prep_streq(p->commit, src->commit)) {
		/* reloaded meanwhile with another source: its settings and its code must agree */
		dm_prep_drop(dr);
		dm_prep_start(dm, dr);
		return;
	}
	if (dir != NULL) { /* no longer a git repository: in place */
		pin.in_place = true;
		pin.dir = xstrdup(dir);
	} else if (commit != NULL && mirror != NULL) {
		pin.repo = prep_strdup(json_string_value(json_object_get(o, "repo")));
		pin.mirror = xstrdup(mirror);
		pin.branch = prep_strdup(json_string_value(json_object_get(o, "branch")));
		pin.commit = xstrdup(commit);
		pin.warning = prep_strdup(json_string_value(json_object_get(o, "warning")));
		pin.note = prep_strdup(json_string_value(json_object_get(o, "note")));
	} else if (err != NULL) {
		why = xstrdup(err);
	} else if (p->exited && p->exit_status < 0) {
		why = xasprintf("eph fetch was killed by signal %lld", (long long)-p->exit_status);
	} else {
		why = xasprintf("eph fetch ended with status %lld and no answer",
		                (long long)p->exit_status);
	}
	/* DR keeps P for the subject line; a run that ends here drops it (drun_free) */
	dm_prepared(dm, dr, why != NULL ? NULL : &pin, why);
	source_pin_clear(&pin);
	free(why);
	dm_kick(dm); /* a run queued: admitted at the next turn of the loop */
}

/* The child's second line, {"subject": ...}: kept for the run's mail. */
static void
prep_subject(struct dprep *p, json_t *o)
{
	struct drun *dr = p->dr;
	const char *subject = json_string_value(json_object_get(o, "subject"));

	free(dr->subject);
	dr->subject = subject != NULL ? xstrdup(subject) : NULL;
	dr->prep = NULL; /* done with it: the child exits by itself */
	p->dr = NULL;
}

/* Handles the complete lines the child wrote, while they are wanted. */
static void
prep_lines(struct dprep *p)
{
	char *nl;

	while (p->dr != NULL && p->buf.len > 0 &&
	       (nl = memchr(p->buf.data, '\n', p->buf.len)) != NULL) {
		size_t n = (size_t)(nl - p->buf.data);
		json_t *o = json_loadb(p->buf.data, n, 0, NULL);

		memmove(p->buf.data, nl + 1, p->buf.len - n - 1);
		p->buf.len -= n + 1;
		p->buf.data[p->buf.len] = '\0';
		if (!p->answered)
			prep_answer(p, o);
		else
			prep_subject(p, o);
		json_decref(o);
	}
}

static void prep_next(struct daemon *dm);

static void
prep_closed(uv_handle_t *h)
{
	struct dprep *p = h->data;
	struct daemon *dm = p->dm;

	if (--p->nopen > 0)
		return;
	dm->nprep--;
	if (p->dr != NULL && !p->answered)
		prep_answer(p, NULL);
	if (p->dr != NULL) { /* no subject line */
		p->dr->prep = NULL;
		p->dr = NULL;
	}
	prep_free(p);
	prep_next(dm);
}

static void
prep_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	b->base = xmalloc(hint);
	b->len = hint;
}

static void
prep_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct dprep *p = s->data;

	if (n > 0 && buf_append(&p->buf, b->base, (size_t)n) < 0)
		n = UV_E2BIG; /* not an answer: said as "no answer" */
	free(b->base);
	if (n > 0)
		prep_lines(p);
	if (n < 0)
		uv_close((uv_handle_t *)s, prep_closed);
}

static void
prep_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct dprep *p = proc->data;

	p->exited = true;
	p->exit_status = sig != 0 ? -sig : status;
	uv_close((uv_handle_t *)proc, prep_closed);
	uv_close((uv_handle_t *)&p->grace, prep_closed);
}

static void
prep_grace(uv_timer_t *t)
{
	struct dprep *p = t->data;

	if (!p->exited)
		(void)uv_process_kill(&p->proc, SIGKILL);
}

/* Starts `eph fetch` (P) for DR's run of the source at URL. */
static void
prep_spawn(struct dprep *p, const char *url)
{
	struct daemon *dm = p->dm;
	struct drun *dr = p->dr;
	const struct conf_source *src = &dm->conf->source;
	char exe[4096], timeout[32], refresh[32], *args[20], **env;
	size_t exelen = sizeof(exe), n = 0;
	uv_stdio_container_t stdio[3];
	uv_process_options_t o = { 0 };
	int rc;

	if ((rc = uv_exepath(exe, &exelen)) < 0) {
		char *why = xasprintf("cannot find eph to fetch with: %s", uv_strerror(rc));

		dr->prep = NULL;
		prep_free(p);
		dm_prepared(dm, dr, NULL, why);
		free(why);
		return;
	}
	p->spawned = true;
	dm->nprep++;
	p->repo = prep_strdup(src->repo);
	p->branch = prep_strdup(src->branch);
	p->commit = prep_strdup(src->commit);
	snprintf(timeout, sizeof(timeout), "%llds", (long long)src->fetch_timeout);
	snprintf(refresh, sizeof(refresh), "%llds", (long long)src->refresh);
	args[n++] = exe;
	args[n++] = (char *)"fetch";
	args[n++] = (char *)"--repo-env"; /* a password in the URL stays out of `ps` */
	args[n++] = (char *)PREP_ENV;
	if (src->branch != NULL) {
		args[n++] = (char *)"--branch";
		args[n++] = src->branch;
	}
	args[n++] = (char *)"--timeout";
	args[n++] = timeout;
	args[n++] = (char *)"--refresh";
	args[n++] = refresh;
	args[n++] = (char *)"--on-fetch-error";
	args[n++] = (char *)(src->on_fetch_error == CONF_FETCH_FAIL ? "fail" : "use_last");
	if (src->commit != NULL) {
		args[n++] = (char *)"--commit";
		args[n++] = src->commit;
	}
	args[n++] = (char *)"--json";
	args[n++] = (char *)"--subject";
	args[n] = NULL;
	uv_pipe_init(&dm->loop, &p->out, 0);
	uv_timer_init(&dm->loop, &p->grace);
	p->out.data = p->grace.data = p->proc.data = p;
	p->nopen = 3;
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&p->out;
	stdio[2].flags = UV_INHERIT_FD; /* it says nothing there unless something is very wrong */
	stdio[2].data.fd = 2;
	env = dm_child_env(PREP_ENV, url);
	o.file = exe;
	o.args = args;
	o.env = env;
	o.exit_cb = prep_exit;
	o.stdio = stdio;
	o.stdio_count = 3;
	rc = uv_spawn(&dm->loop, &p->proc, &o);
	dm_child_env_free(env);
	if (rc < 0) {
		p->exited = true;
		p->exit_status = 127;
		dlog(DLOG_ERROR, dr->id, dr->job, "cannot run eph fetch: %s", uv_strerror(rc));
		uv_close((uv_handle_t *)&p->proc, prep_closed);
		uv_close((uv_handle_t *)&p->out, prep_closed);
		uv_close((uv_handle_t *)&p->grace, prep_closed);
		return;
	}
	if (uv_read_start((uv_stream_t *)&p->out, prep_alloc, prep_read) < 0)
		uv_close((uv_handle_t *)&p->out, prep_closed);
}

/* Gives P its turn: its child, or, when the source is no longer a repository, the run
 * settled here. */
static void
prep_run(struct dprep *p)
{
	struct daemon *dm = p->dm;
	struct drun *dr = p->dr;
	const struct conf_source *src = &dm->conf->source;
	char *url = NULL;
	int rc = src->repo != NULL ? source_repo_url(src->repo, dm->conf->dir, &url) : 1;

	if (rc != 0) {
		dr->prep = NULL;
		prep_free(p);
		prep_here(dm, dr, url, rc);
	} else {
		prep_spawn(p, url);
	}
	free(url);
}

/* A child ended: the preparations waiting get their turn while there is room. */
static void
prep_next(struct daemon *dm)
{
	while (dm->prep_head != NULL && dm->nprep < PREP_MAX) {
		struct dprep *p = dm->prep_head;

		dm->prep_head = p->qnext;
		if (dm->prep_head == NULL)
			dm->prep_tail = NULL;
		p->qnext = NULL;
		prep_run(p);
	}
}

void
dm_prep_start(struct daemon *dm, struct drun *dr)
{
	struct dprep *p;

	dr->phase = DR_PREPARING;
	if (dm->conf->source.repo == NULL) {
		prep_here(dm, dr, NULL, 1);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->dm = dm;
	p->dr = dr;
	buf_init(&p->buf, BUF_MAX_JSON);
	dr->prep = p;
	if (dm->nprep < PREP_MAX && dm->prep_head == NULL) {
		prep_run(p);
		return;
	}
	if (dm->prep_tail != NULL)
		dm->prep_tail->qnext = p;
	else
		dm->prep_head = p;
	dm->prep_tail = p;
}

void
dm_prep_drop(struct drun *dr)
{
	struct dprep *p = dr->prep;
	struct daemon *dm;

	if (p == NULL)
		return;
	dm = p->dm;
	dr->prep = NULL;
	p->dr = NULL;
	if (!p->spawned) { /* still waiting for its turn */
		struct dprep **pp = &dm->prep_head, *last = NULL;

		while (*pp != NULL && *pp != p) {
			last = *pp;
			pp = &(*pp)->qnext;
		}
		if (*pp == p)
			*pp = p->qnext;
		if (dm->prep_tail == p)
			dm->prep_tail = last;
		prep_free(p);
		return;
	}
	if (p->exited)
		return;
	/* it kills its git's process group, then exits: the loop ends after it */
	(void)uv_process_kill(&p->proc, SIGTERM);
	uv_timer_start(&p->grace, prep_grace, PREP_GRACE_MS, 0);
}
