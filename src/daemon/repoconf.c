/* src/daemon/repoconf.c: `eph daemon --from-repo`: the jobs file read from the repository.
 *
 * At start the repository is fetched into its mirror (in the daemon itself, before the loop
 * runs), the branch's commit is checked out into STATE/src/<commit> (the cache runs use) and
 * the jobs file is read from there. Then, every source.refresh, the daemon runs `eph fetch
 * --checkout --json` as a child process (a fetch may take minutes and must not hold the loop,
 * and a child is killed at once when the daemon stops, which a thread could not be), and a new
 * commit reloads the configuration from it. Runs of a job whose source is this repository and
 * branch (the jobs file names no other) are pinned to the commit the configuration came from
 * (conf_source.commit), so a job's settings and its code always come from one commit. A commit
 * whose jobs file is invalid is reported once (log, admin mail) and the daemon keeps the last
 * good configuration and its commit; STATE/from-repo.json remembers that commit across
 * restarts, so a daemon started while the branch's file is broken starts from it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "conf/conf.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "source/gitrun.h"
#include "source/source.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define REPO_GOOD_FILE   "from-repo.json" /* in the state directory: the last good commit */
#define REPO_MIN_POLL_MS 1000             /* source.refresh 0 polls the jobs file this often */

struct drepo {
	struct daemon *dm;
	char *url;    /* the repository as git fetches it (may hold credentials: never logged) */
	char *shown;  /* the repository for people: without credentials */
	char *key;    /* its mirror's key */
	char *commit; /* the commit of the current configuration */
	char *bad_commit; /* the newest commit whose jobs file failed: reported once */
	char *last_warn;  /* the last fetch problem logged: logged again only when it changes */
	int hold_fd;      /* LOCK_SH on STATE/src/<commit>.lock: the worktree stays */
	int64_t period_ms;
	uv_timer_t timer;
	uv_timer_t watchdog; /* a fetch that outlives its timeout is stopped */
	uv_process_t proc;
	uv_pipe_t out;
	struct buf buf;
	int64_t exit_status;
	int nopen; /* handles of the fetch in progress still open */
	bool busy, force, timer_open, watchdog_open;
};

/* The state directory's remembered last good commit, or NULL. Caller frees. */
static char *
repo_good_read(struct daemon *dm)
{
	char *path = xasprintf("%s/%s", dm->o->state_dir, REPO_GOOD_FILE), *commit = NULL;
	json_t *o = json_load_file(path, 0, NULL);
	const char *key = json_string_value(json_object_get(o, "mirror"));
	const char *branch = json_string_value(json_object_get(o, "branch"));
	const char *file = json_string_value(json_object_get(o, "file"));
	const char *c = json_string_value(json_object_get(o, "commit"));
	const char *want = dm->o->branch != NULL ? dm->o->branch : "";

	if (key != NULL && strcmp(key, dm->repo->key) == 0 && branch != NULL &&
	    strcmp(branch, want) == 0 && file != NULL && strcmp(file, dm->o->conf_path) == 0 &&
	    c != NULL)
		commit = xstrdup(c);
	json_decref(o);
	free(path);
	return commit;
}

/* Remembers COMMIT as the last good one, durably (fsio_write_atomic). */
static void
repo_good_write(struct daemon *dm, const char *commit)
{
	char *path = xasprintf("%s/%s", dm->o->state_dir, REPO_GOOD_FILE);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "mirror", dm->repo->key, "branch",
	                      dm->o->branch != NULL ? dm->o->branch : "", "file", dm->o->conf_path,
	                      "commit", commit);
	char *text = json_dumps(o, JSON_COMPACT);
	int rc = text != NULL ? fsio_write_atomic(path, text, strlen(text), 0600, 0) : -ENOMEM;

	if (rc < 0)
		dlog(DLOG_WARN, 0, NULL, "cannot remember the good commit in %s: %s", path,
		     strerror(-rc));
	free(text);
	json_decref(o);
	free(path);
}

/* Runs of jobs whose source is the daemon's repository and branch are pinned to COMMIT: the
 * jobs file without a source.repo means that one. */
static void
repo_imply(struct daemon *dm, struct conf *c, const char *commit)
{
	const char *want = dm->o->branch;

	if (c->source.repo == NULL) {
		c->source.repo = xstrdup(dm->repo->url);
		c->source.branch = want != NULL ? xstrdup(want) : NULL;
	} else {
		char *url = NULL;
		bool same = source_repo_url(c->source.repo, c->dir, &url) == 0 &&
		            strcmp(url, dm->repo->url) == 0;

		free(url);
		if (!same || (c->source.branch == NULL) != (want == NULL) ||
		    (want != NULL && strcmp(c->source.branch, want) != 0))
			return; /* another repository or branch: its runs resolve it themselves */
	}
	c->source.commit = xstrdup(commit);
}

/* Checks COMMIT out (a no-op when its worktree is there) and reads the jobs file from it into
 * *OUT; on success *HOLD_FD holds the worktree. 0, or -errno with every problem in D. */
static int
repo_load(struct daemon *dm, const char *commit, struct conf **out, int *hold_fd, struct diag *d)
{
	struct source_worktree wt = { NULL, -1, false };
	char *mirror = xasprintf("%s/mirrors/%s.git", dm->o->state_dir, dm->repo->key);
	char *path = NULL, *name = NULL, *dir = NULL;
	struct buf text;
	int rc;

	*out = NULL;
	*hold_fd = -1;
	buf_init(&text, BUF_MAX_CONF);
	rc = source_checkout(dm->o->state_dir, mirror, commit,
	                     dm->conf != NULL ? dm->conf->source.keep_worktrees : 5, &wt, d);
	if (rc < 0)
		goto out;
	path = xasprintf("%s/%s", wt.path, dm->o->conf_path);
	name = xasprintf("%s@%.12s", dm->o->conf_path, commit);
	rc = fsio_read_file(path, &text);
	if (rc < 0) {
		struct diag_pos at = { name, 0, 0 };

		if (rc == -ENOENT)
			diag_error(d, at, "no such file in commit %.12s of %s", commit,
			           dm->repo->shown);
		else if (rc == -E2BIG)
			diag_error(d, at, "too large: a jobs file may have at most %u MiB",
			           BUF_MAX_CONF >> 20);
		else
			diag_error(d, at, "cannot read: %s", strerror(-rc));
		goto out;
	}
	dir = xstrdup(path);
	rc = conf_load_mem(name, dirname(dir), text.data != NULL ? text.data : "", text.len, out,
	                   d);
	if (rc < 0)
		goto out;
	repo_imply(dm, *out, commit);
	*hold_fd = wt.hold_fd;
	wt.hold_fd = -1;
out:
	source_worktree_release(&wt);
	buf_free(&text);
	free(mirror);
	free(path);
	free(name);
	free(dir);
	return rc;
}

/* The current configuration now comes from COMMIT, held by HOLD_FD. */
static void
repo_took(struct daemon *dm, const char *commit, int hold_fd)
{
	struct drepo *rp = dm->repo;

	if (rp->hold_fd >= 0)
		close(rp->hold_fd);
	rp->hold_fd = hold_fd;
	free(rp->commit);
	rp->commit = xstrdup(commit);
	free(rp->bad_commit);
	rp->bad_commit = NULL;
	free(dm->conf_path);
	dm->conf_path = xasprintf("%s@%.12s", dm->o->conf_path, commit);
	repo_good_write(dm, commit);
}

static void
repo_stop_sig(int sig)
{
	(void)sig;
	gitrun_abort(); /* the git in progress (its process group) is killed, no other starts */
}

static int repo_open(struct daemon *dm);

int
dm_repo_open(struct daemon *dm)
{
	struct sigaction sa, oterm, oint;
	int rc;

	/* Before the loop (and its signal handling) runs, a stop during the first fetch and
	 * checkout ends their git too: its own process group, which SIGTERM does not reach. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = repo_stop_sig;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, &oterm);
	(void)sigaction(SIGINT, &sa, &oint);
	rc = repo_open(dm);
	(void)sigaction(SIGTERM, &oterm, NULL);
	(void)sigaction(SIGINT, &oint, NULL);
	if (gitrun_is_aborted()) {
		fprintf(stderr, "eph daemon: stopped while fetching %s\n",
		        dm->repo->shown != NULL ? dm->repo->shown : "the jobs file's repository");
		return -EINTR;
	}
	return rc;
}

static int
repo_open(struct daemon *dm)
{
	struct drepo *rp = xcalloc(1, sizeof(*rp));
	struct source_pin pin;
	struct conf_source src;
	char *cwd = getcwd(NULL, 0), *good = NULL;
	struct diag d;
	int hold = -1, rc;

	dm->repo = rp;
	rp->dm = dm;
	rp->hold_fd = -1;
	buf_init(&rp->buf, BUF_MAX_JSON);
	diag_init(&d);
	if (cwd == NULL) {
		rc = -errno;
		fprintf(stderr, "eph daemon: cannot get the current directory: %s\n",
		        strerror(-rc));
		goto out;
	}
	rc = source_repo_url(dm->o->from_repo, cwd, &rp->url);
	if (rc != 0) {
		char *shown = gitrun_redact(dm->o->from_repo);

		fprintf(stderr, "eph daemon: --from-repo %s: %s\n", shown,
		        rc == 1 ? "not a git repository" : strerror(-rc));
		free(shown);
		rc = rc == 1 ? -EINVAL : rc;
		goto out;
	}
	rp->shown = gitrun_redact(rp->url);
	rp->key = source_mirror_key(rp->url);
	conf_source_defaults(&src);
	src.repo = rp->url;
	src.branch = (char *)dm->o->branch;
	src.refresh = 0;
	rc = source_resolve(dm->o->state_dir, &src, cwd, &pin, &d);
	if (rc < 0) {
		diag_print(&d, stderr);
		goto out;
	}
	if (pin.warning != NULL)
		dlog(DLOG_WARN, 0, NULL, "%s", pin.warning);
	rc = repo_load(dm, pin.commit, &dm->conf, &hold, &d);
	if (rc == 0) {
		repo_took(dm, pin.commit, hold);
	} else {
		diag_sort(&d);
		diag_print(&d, stderr);
		good = repo_good_read(dm);
		if (good != NULL && strcmp(good, pin.commit) != 0) {
			diag_free(&d);
			diag_init(&d);
			rc = repo_load(dm, good, &dm->conf, &hold, &d);
			if (rc < 0) {
				diag_print(&d, stderr);
			} else {
				dlog(DLOG_WARN, 0, NULL,
				     "the jobs file of %.12s (branch head) has errors: started from "
				     "the last good commit, %.12s",
				     pin.commit, good);
				repo_took(dm, good, hold);
				rp->bad_commit = xstrdup(pin.commit);
			}
		}
	}
	source_pin_clear(&pin);
out:
	diag_free(&d);
	free(good);
	free(cwd);
	return rc;
}

/* --- following the repository --------------------------------------------------------- */

static void repo_fetched(struct daemon *dm);

static void
repo_closed(uv_handle_t *h)
{
	struct drepo *rp = h->data;

	if (--rp->nopen > 0)
		return;
	rp->busy = false;
	if (!rp->dm->stopping)
		repo_fetched(rp->dm);
}

static void
repo_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	b->base = xmalloc(hint);
	b->len = hint;
}

static void
repo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct drepo *rp = s->data;

	if (n > 0 && buf_append(&rp->buf, b->base, (size_t)n) < 0)
		n = UV_E2BIG;
	free(b->base);
	if (n < 0)
		uv_close((uv_handle_t *)s, repo_closed);
}

static void
repo_exit(uv_process_t *p, int64_t status, int sig)
{
	struct drepo *rp = p->data;

	rp->exit_status = sig != 0 ? -sig : status;
	uv_timer_stop(&rp->watchdog);
	uv_close((uv_handle_t *)p, repo_closed);
}

static void
repo_watchdog(uv_timer_t *t)
{
	struct drepo *rp = t->data;

	dlog(DLOG_WARN, 0, NULL, "eph fetch of %s did not end in time: stopping it", rp->shown);
	(void)uv_process_kill(&rp->proc, SIGTERM); /* it kills its git, then exits */
}

static void
repo_tick(uv_timer_t *t)
{
	dm_repo_fetch(t->data, false);
}

void
dm_repo_fetch(struct daemon *dm, bool force)
{
	struct drepo *rp = dm->repo;
	char exe[4096], timeout[32];
	size_t exelen = sizeof(exe);
	char *args[14], keep[24], **env = NULL;
	size_t n = 0;
	uv_stdio_container_t stdio[3];
	uv_process_options_t o = { 0 };
	int rc;

	if (rp == NULL || dm->stopping)
		return;
	rp->force = rp->force || force;
	if (rp->busy)
		return; /* what is in progress decides; a forced reload waits for it */
	if ((rc = uv_exepath(exe, &exelen)) < 0) {
		dlog(DLOG_ERROR, 0, NULL, "cannot fetch %s: %s", rp->shown, uv_strerror(rc));
		return;
	}
	snprintf(timeout, sizeof(timeout), "%llds", (long long)dm->conf->source.fetch_timeout);
	args[n++] = exe;
	args[n++] = (char *)"fetch";
	args[n++] = (char *)"--repo-env"; /* a password in the URL stays out of `ps` */
	args[n++] = (char *)"EPH_FETCH_REPO";
	if (dm->o->branch != NULL) {
		args[n++] = (char *)"--branch";
		args[n++] = (char *)dm->o->branch;
	}
	args[n++] = (char *)"--timeout";
	args[n++] = timeout;
	snprintf(keep, sizeof(keep), "%d", dm->conf->source.keep_worktrees);
	args[n++] = (char *)"--checkout";
	args[n++] = (char *)"--keep";
	args[n++] = keep;
	args[n++] = (char *)"--json";
	args[n] = NULL;
	buf_reset(&rp->buf);
	uv_pipe_init(&dm->loop, &rp->out, 0);
	rp->out.data = rp;
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&rp->out;
	stdio[2].flags = UV_INHERIT_FD; /* it says nothing there unless something is very wrong */
	stdio[2].data.fd = 2;
	env = dm_child_env("EPH_FETCH_REPO", rp->url);
	o.file = exe;
	o.args = args;
	o.env = env;
	o.exit_cb = repo_exit;
	o.stdio = stdio;
	o.stdio_count = 3;
	rp->proc.data = rp;
	rp->busy = true;
	rp->nopen = 2;
	rp->exit_status = 0;
	rc = uv_spawn(&dm->loop, &rp->proc, &o);
	dm_child_env_free(env);
	if (rc < 0) {
		dlog(DLOG_ERROR, 0, NULL, "cannot run eph fetch: %s", uv_strerror(rc));
		rp->exit_status = -1;
		uv_close((uv_handle_t *)&rp->proc, repo_closed);
		uv_close((uv_handle_t *)&rp->out, repo_closed);
		return;
	}
	rc = uv_read_start((uv_stream_t *)&rp->out, repo_alloc, repo_read);
	if (rc < 0)
		uv_close((uv_handle_t *)&rp->out, repo_closed);
	if (!rp->watchdog_open) {
		uv_timer_init(&dm->loop, &rp->watchdog);
		rp->watchdog.data = rp;
		rp->watchdog_open = true;
	}
	/* its own timeout, plus a minute for the checkout; an hour without one */
	uv_timer_start(&rp->watchdog, repo_watchdog,
	               dm->conf->source.fetch_timeout > 0
	                       ? (uint64_t)(dm->conf->source.fetch_timeout + 60) * 1000
	                       : 3600 * 1000,
	               0);
}

/* Logs a fetch problem MSG (NULL: none) when it is news. */
static void
repo_warn(struct drepo *rp, const char *msg)
{
	if (msg == NULL) {
		if (rp->last_warn != NULL)
			dlog(DLOG_INFO, 0, NULL, "%s fetches again", rp->shown);
		free(rp->last_warn);
		rp->last_warn = NULL;
		return;
	}
	if (rp->last_warn != NULL && strcmp(rp->last_warn, msg) == 0)
		return;
	dlog(DLOG_WARN, 0, NULL, "%s", msg);
	free(rp->last_warn);
	rp->last_warn = xstrdup(msg);
}

/* The fetch in progress ended: a new commit reloads the configuration from it. */
static void
repo_fetched(struct daemon *dm)
{
	struct drepo *rp = dm->repo;
	json_t *o = json_loadb(rp->buf.data != NULL ? rp->buf.data : "", rp->buf.len, 0, NULL);
	const char *commit = json_string_value(json_object_get(o, "commit"));
	const char *err = json_string_value(json_object_get(o, "error"));
	bool force = rp->force;
	struct conf *nc = NULL;
	struct diag d;
	int hold = -1;

	rp->force = false;
	if (dm->conf->source.commit == NULL) { /* the jobs run another repository */
		struct conf_source src;

		conf_source_defaults(&src);
		src.repo = rp->url;
		src.branch = (char *)dm->o->branch;
		dm_source_alarm_of(dm, &src, "/");
	}
	dm_source_alarm(dm);
	if (commit == NULL) {
		char *msg = err != NULL ? xasprintf("cannot fetch the jobs file: %s", err)
		            : rp->exit_status < 0
		                    ? xasprintf("cannot fetch the jobs file: eph fetch was killed "
		                                "by signal %lld",
		                                (long long)-rp->exit_status)
		                    : xasprintf("cannot fetch the jobs file: eph fetch ended with "
		                                "status %lld",
		                                (long long)rp->exit_status);

		repo_warn(rp, msg);
		free(msg);
		json_decref(o);
		return;
	}
	repo_warn(rp, json_string_value(json_object_get(o, "warning")));
	if (!force && (strcmp(commit, rp->commit) == 0 ||
	               (rp->bad_commit != NULL && strcmp(commit, rp->bad_commit) == 0))) {
		json_decref(o);
		return;
	}
	diag_init(&d);
	if (repo_load(dm, commit, &nc, &hold, &d) < 0) {
		char *why = xasprintf("commit %.12s", commit);

		free(rp->bad_commit);
		rp->bad_commit = xstrdup(commit);
		dm_reload_failed(dm, why, &d);
		free(why);
	} else {
		char *why = xasprintf("%s %.12s", force ? "SIGHUP, commit" : "new commit", commit);

		repo_took(dm, commit, hold);
		dm_apply_conf(dm, nc, why);
		free(why);
		dm_repo_arm(dm);
	}
	diag_free(&d);
	json_decref(o);
}

void
dm_repo_arm(struct daemon *dm)
{
	struct drepo *rp = dm->repo;
	int64_t ms;

	if (rp == NULL || dm->stopping)
		return;
	/* refresh 0 fetches before every run (they fetch themselves, unless pinned to the jobs
	 * file's commit); the jobs file is still polled at most once a second */
	ms = dm->conf->source.refresh * 1000;
	if (ms < REPO_MIN_POLL_MS)
		ms = REPO_MIN_POLL_MS;
	if (!rp->timer_open) {
		uv_timer_init(&dm->loop, &rp->timer);
		rp->timer.data = dm;
		rp->timer_open = true;
	} else if (ms == rp->period_ms) {
		return;
	}
	rp->period_ms = ms;
	uv_timer_start(&rp->timer, repo_tick, (uint64_t)ms, (uint64_t)ms);
}

void
dm_repo_stop(struct daemon *dm)
{
	struct drepo *rp = dm->repo;

	if (rp == NULL)
		return;
	if (rp->timer_open)
		uv_close((uv_handle_t *)&rp->timer, NULL);
	rp->timer_open = false;
	if (rp->watchdog_open)
		uv_close((uv_handle_t *)&rp->watchdog, NULL);
	rp->watchdog_open = false;
	/* a fetch in progress is not waited for: the next start fetches again */
	if (rp->busy && uv_is_active((uv_handle_t *)&rp->proc))
		(void)uv_process_kill(&rp->proc, SIGTERM);
}

bool
daemon_repo_path_ok(const char *path)
{
	const char *p = path;

	if (*p == '\0' || *p == '/')
		return false;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return p[-1] != '/';
}

const char *
dm_repo_shown(const struct daemon *dm)
{
	return dm->repo != NULL ? dm->repo->shown : "";
}

void
dm_repo_free(struct daemon *dm)
{
	struct drepo *rp = dm->repo;

	if (rp == NULL)
		return;
	if (rp->hold_fd >= 0)
		close(rp->hold_fd);
	buf_free(&rp->buf);
	free(rp->url);
	free(rp->shown);
	free(rp->key);
	free(rp->commit);
	free(rp->bad_commit);
	free(rp->last_warn);
	free(rp);
	dm->repo = NULL;
}
