/* src/source/source.c: mirrors and resolving a branch to a commit (the caches and the worktrees
 * are in source_cache.c and source_worktree.c). */
#include "source/source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/conf.h"
#include "source/gitrun.h"
#include "source/source_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

void
source_err(struct diag *d, const char *fmt, ...)
{
	struct diag_pos none = { NULL, 0, 0 };
	va_list ap;
	char *msg, *clean;
	struct buf b;

	buf_init(&b, BUF_MAX_MSG);
	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) < 0)
		buf_reset(&b); /* past BUF_MAX_MSG: the message below says at least that */
	va_end(ap);
	msg = b.len > 0 ? buf_steal(&b) : xstrdup("source: message too long");
	buf_free(&b);
	clean = gitrun_redact(msg);
	diag_error(d, none, "%s", clean);
	free(clean);
	free(msg);
}

bool
source_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool
source_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int
source_git(const char *const *args, int64_t timeout_ms, char **out, char **why)
{
	struct gitrun_result r;
	int rc = gitrun(args, timeout_ms, &r);

	if (out != NULL)
		*out = NULL;
	if (why != NULL)
		*why = NULL;
	if (rc < 0) {
		if (why != NULL)
			*why = xasprintf("cannot run git: %s", strerror(-rc));
		return rc;
	}
	if (!gitrun_ok(&r)) {
		if (why != NULL)
			*why = gitrun_why(&r, timeout_ms);
		gitrun_result_free(&r);
		return -EIO;
	}
	if (out != NULL) {
		size_t n = strlen(r.out);

		while (n > 0 && (r.out[n - 1] == '\n' || r.out[n - 1] == '\r'))
			r.out[--n] = '\0';
		*out = r.out;
		r.out = NULL;
	}
	gitrun_result_free(&r);
	return 0;
}

bool
source_is_commit_id(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 40 || n == 64;
}

/* ---- repositories and mirrors ---- */

/* true for "scheme://..." and git's scp-like "[user@]host:path" (a colon before any slash). */
static bool
source_is_url(const char *repo)
{
	const char *colon = strchr(repo, ':'), *slash = strchr(repo, '/');
	const char *p = repo;

	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
	       *p == '+' || *p == '-' || *p == '.')
		p++;
	if (p > repo && strncmp(p, "://", 3) == 0)
		return true;
	return colon != NULL && colon > repo && (slash == NULL || colon < slash) && repo[0] != '.';
}

int
source_repo_url(const char *repo, const char *base_dir, char **url_out)
{
	char *path, *real, *probe;
	bool git;

	*url_out = NULL;
	if (source_is_url(repo)) {
		*url_out = xstrdup(repo);
		return 0;
	}
	path = repo[0] == '/' ? xstrdup(repo) : xasprintf("%s/%s", base_dir, repo);
	real = realpath(path, NULL);
	free(path);
	if (real == NULL)
		return -errno;
	if (!source_is_dir(real)) {
		free(real);
		return -ENOTDIR;
	}
	probe = xasprintf("%s/.git", real);
	git = source_exists(probe);
	free(probe);
	if (!git) { /* a bare repository */
		char *head = xasprintf("%s/HEAD", real), *objects = xasprintf("%s/objects", real);

		git = source_exists(head) && source_is_dir(objects);
		free(head);
		free(objects);
	}
	*url_out = real;
	return git ? 0 : 1;
}

char *
source_mirror_key(const char *url)
{
	uint8_t md[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	char *hex = xmalloc(33);

	sha256_init(&ctx);
	sha256_update(&ctx, strlen(url), (const uint8_t *)url);
	sha256_digest(&ctx, sizeof(md), md);
	for (unsigned i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

int
source_mirror_commit(const char *mirror, const char *branch, char **commit_out)
{
	char *ref, *head = NULL, *spec;
	int rc;

	*commit_out = NULL;
	if (branch == NULL) {
		const char *a[] = { "--git-dir", mirror, "symbolic-ref", "--quiet", "HEAD", NULL };

		rc = source_git(a, SOURCE_LOCAL_MS, &head, NULL);
		if (rc < 0)
			return rc == -EIO ? -ENOENT : rc;
		ref = head;
	} else {
		ref = xasprintf("refs/heads/%s", branch);
	}
	spec = xasprintf("%s^{commit}", ref);
	{
		const char *a[] = { "--git-dir",        mirror, "rev-parse", "--verify", "--quiet",
			            "--end-of-options", spec,   NULL };

		rc = source_git(a, SOURCE_LOCAL_MS, commit_out, NULL);
	}
	free(spec);
	free(ref);
	if (rc == 0 && !source_is_commit_id(*commit_out)) {
		free(*commit_out);
		*commit_out = NULL;
		rc = -ENOENT;
	}
	return rc == -EIO ? -ENOENT : rc;
}

/* The mirror's remembered state (SOURCE_STATE_FILE), as JSON:
 * {"attempt_at": T, "ok": bool, "error": "why"|null, "fetched_at": T,
 *  "branches": {"main": "<commit>"}}; a missing or unreadable file reads as {}. */
static json_t *
source_state_read(const char *mirror)
{
	char *p = xasprintf("%s/" SOURCE_STATE_FILE, mirror);
	json_t *j = json_load_file(p, 0, NULL);

	free(p);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	if (!json_is_object(json_object_get(j, "branches")))
		json_object_set_new(j, "branches", json_object());
	return j;
}

/* Writes the state durably (fsio_write_atomic). 0 or -errno. */
static int
source_state_write(const char *mirror, json_t *j)
{
	char *p = xasprintf("%s/" SOURCE_STATE_FILE, mirror);
	char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = text != NULL ? fsio_write_atomic(p, text, strlen(text), 0600, 0) : -ENOMEM;

	free(text);
	free(p);
	return rc;
}

static double
source_json_num(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	return json_is_number(v) ? json_number_value(v) : 0;
}

static void
source_format_time(double t, char *out, size_t n)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&s, &tm) == NULL)
		snprintf(out, n, "never");
	else
		strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Records in STATE a fetch attempt made at NOW: attempt_at and ok; on success fetched_at,
 * with error null and failing_since removed; on failure error (WHY without credentials) and
 * failing_since, the first failed attempt of the outage: set by a failure that follows a
 * success (or none), kept by the failures after it. Every writer of an attempt goes through
 * here, so that source_health's failing_since (the admin's alarm key) holds. */
static void
source_state_attempt(json_t *state, double now, bool ok, const char *why)
{
	bool was_ok = json_is_true(json_object_get(state, "ok"));
	char *clean;

	json_object_set_new(state, "attempt_at", json_real(now));
	json_object_set_new(state, "ok", json_boolean(ok));
	if (ok) {
		json_object_set_new(state, "fetched_at", json_real(now));
		json_object_set_new(state, "error", json_null());
		(void)json_object_del(state, "failing_since"); /* -1 when absent: fine */
		return;
	}
	clean = gitrun_redact(why != NULL ? why : "unknown error");
	json_object_set_new(state, "error", json_string(clean));
	free(clean);
	if (was_ok || source_json_num(state, "failing_since") <= 0)
		json_object_set_new(state, "failing_since", json_real(now));
}

/* Clones URL into MIRROR (aside, then renamed) or fetches it. 0, or -EIO with *WHY.
 * Worktrees borrow the mirror's objects (clone --shared), so git must never delete objects in
 * a mirror by itself: the clone sets gc.auto=0 and maintenance.auto=false in the mirror's
 * config, and the fetch says so again on its command line (for mirrors made before). */
static int
source_fetch(const char *url, const char *mirror, bool exists, int64_t timeout_ms, char **why)
{
	char *tmp;
	int rc;

	if (exists) {
		const char *a[] = { "-c",        "gc.auto=0", "-c",    "maintenance.auto=false",
			            "--git-dir", mirror,      "fetch", "--prune",
			            "--quiet",   "origin",    NULL };

		return source_git(a, timeout_ms, NULL, why);
	}
	tmp = xasprintf("%s.tmp", mirror);
	if ((rc = source_rmtree(tmp)) < 0) {
		*why = xasprintf("cannot remove the leftover %s: %s", tmp, strerror(-rc));
		free(tmp);
		return -EIO;
	}
	{
		const char *a[] = { "clone",     "--mirror", "--config",
			            "gc.auto=0", "--config", "maintenance.auto=false",
			            "--quiet",   "--",       url,
			            tmp,         NULL };

		rc = source_git(a, timeout_ms, NULL, why);
	}
	if (rc == 0 && rename(tmp, mirror) < 0) {
		rc = -errno;
		*why = xasprintf("cannot rename %s: %s", tmp, strerror(errno));
	}
	/* a leftover the removal cannot take is met again (and reported) by the next clone */
	if (rc < 0 && source_rmtree(tmp) < 0)
		rc = -EIO;
	free(tmp);
	return rc < 0 ? -EIO : 0;
}

static int
source_in_place(const char *dir, struct source_pin *pin)
{
	pin->in_place = true;
	pin->dir = xstrdup(dir);
	return 0;
}

/* What source_resolve works with, for one repository source. */
struct resolve {
	const struct conf_source *src;
	struct diag *d;
	char *url;               /* as git fetches it (may hold credentials) */
	char *shown;             /* without credentials */
	char *mdir;              /* STATE/mirrors */
	char *mirror;            /* STATE/mirrors/<key>.git */
	char *lockp;             /* its lock */
	int lock;                /* LOCK_EX on it, or -1 */
	json_t *state;           /* the mirror's eph-state.json */
	bool exists;             /* the mirror exists */
	bool dirty;              /* STATE changed: write it back */
	const char *fetch_error; /* the last attempt's error when it failed (in STATE), or NULL */
};

static void
resolve_free(struct resolve *r)
{
	if (r->lock >= 0)
		close(r->lock);
	json_decref(r->state);
	free(r->url);
	free(r->shown);
	free(r->mdir);
	free(r->mirror);
	free(r->lockp);
}

/* Takes the mirror's lock and reads its state. 0, or -errno with the message in R->d. */
static int
resolve_lock(struct resolve *r, const char *state_dir)
{
	char *key = source_mirror_key(r->url), *head;
	int rc;

	r->shown = gitrun_redact(r->url);
	r->mdir = xasprintf("%s/mirrors", state_dir);
	r->mirror = xasprintf("%s/%s.git", r->mdir, key);
	r->lockp = xasprintf("%s.lock", r->mirror);
	free(key);
	if ((rc = fsio_mkdirs(r->mdir, 0700)) < 0) {
		source_err(r->d, "cannot create %s: %s", r->mdir, strerror(-rc));
		return rc;
	}
	/* A pinned commit writes nothing: it reads the state file (replaced atomically) and HEAD
	 * (which a fetch of a mirror never moves) without waiting for a fetch in progress. */
	r->lock = r->src->commit != NULL ? -1 : source_cache_lock(r->lockp, false);
	if (r->lock < 0 && r->src->commit == NULL) {
		source_err(r->d, "cannot lock %s: %s", r->lockp, strerror(-r->lock));
		return r->lock;
	}
	head = xasprintf("%s/HEAD", r->mirror);
	r->exists = source_exists(head);
	free(head);
	r->state = r->exists ? source_state_read(r->mirror) : json_object();
	return 0;
}

/* Clones or fetches the mirror when its last attempt is older than source.refresh (never for a
 * pinned commit), recording the attempt; then notes a failed last attempt in R->fetch_error.
 * 0, or -errno with the message in R->d: no mirror (pinned, or the clone failed), or the fetch
 * failed with on_fetch_error: fail. */
static int
resolve_fetch(struct resolve *r)
{
	const struct conf_source *src = r->src;
	double now = clock_real(), last = source_json_num(r->state, "attempt_at");
	char *why = NULL;
	int rc;

	/* a pinned commit (src->commit) is used as it is: its daemon fetches */
	if (src->commit != NULL && !r->exists) {
		source_err(r->d, "no mirror of %s in %s", r->shown, r->mdir);
		return -ENOENT;
	}
	if (src->commit == NULL &&
	    (!r->exists || last <= 0 || now < last || now - last >= (double)src->refresh)) {
		int64_t ms = src->fetch_timeout > 0 ? src->fetch_timeout * 1000 : 0;

		rc = source_fetch(r->url, r->mirror, r->exists, ms, &why);
		if (rc < 0 && !r->exists) {
			source_err(r->d, "cannot clone %s: %s", r->shown, why);
			free(why);
			return rc;
		}
		if (!r->exists) {
			json_decref(r->state);
			r->state = source_state_read(r->mirror);
			r->exists = true;
		}
		source_state_attempt(r->state, now, rc == 0, why);
		r->dirty = true;
		free(why);
	}
	if (json_is_true(json_object_get(r->state, "ok")))
		return 0;
	r->fetch_error = json_string_value(json_object_get(r->state, "error"));
	if (r->fetch_error == NULL)
		r->fetch_error = "unknown error";
	if (src->on_fetch_error == CONF_FETCH_FAIL) {
		source_err(r->d, "cannot fetch %s: %s (source.on_fetch_error is fail)", r->shown,
		           r->fetch_error);
		return -EIO;
	}
	return 0;
}

/* The branch to resolve into *BRANCH (caller frees): source.branch, else the mirror's HEAD;
 * NULL for a pinned commit whose mirror has none. 0, or -ENOENT with the message in R->d. */
static int
resolve_branch(struct resolve *r, char **branch)
{
	const char *a[] = { "--git-dir", r->mirror, "symbolic-ref", "--quiet", "--short",
		            "HEAD",      NULL };

	if (r->src->branch != NULL) {
		*branch = xstrdup(r->src->branch);
		return 0;
	}
	if (source_git(a, SOURCE_LOCAL_MS, branch, NULL) == 0 && (*branch)[0] != '\0')
		return 0;
	free(*branch);
	*branch = NULL;
	if (r->src->commit != NULL)
		return 0; /* pinned: the commit is known; the branch was for people only */
	source_err(r->d, "%s has no default branch: set source.branch", r->shown);
	return -ENOENT;
}

/* BRANCH is gone from the mirror: its last known commit into PIN->commit (with a warning) when
 * on_fetch_error is use_last and the mirror still has it. 0, or -ENOENT with the message in
 * R->d. */
static int
resolve_deleted(struct resolve *r, const char *branch, struct source_pin *pin)
{
	json_t *branches = json_object_get(r->state, "branches");
	const char *last = json_string_value(json_object_get(branches, branch));
	bool have = false;

	if (last == NULL) {
		source_err(r->d, "branch %s does not exist on %s", branch, r->shown);
		return -ENOENT;
	}
	if (r->src->on_fetch_error == CONF_FETCH_USE_LAST) {
		char *spec = xasprintf("%s^{commit}", last);
		const char *a[] = { "--git-dir", r->mirror, "cat-file", "-e", spec, NULL };

		have = source_git(a, SOURCE_LOCAL_MS, NULL, NULL) == 0;
		free(spec);
	}
	if (!have) {
		source_err(r->d, "branch %s no longer exists on %s; last known commit was %s",
		           branch, r->shown, last);
		return -ENOENT;
	}
	pin->commit = xstrdup(last);
	pin->warning = xasprintf("branch %s no longer exists on %s; ran its last known commit %s",
	                         branch, r->shown, last);
	return 0;
}

/* BRANCH resolved to PIN->commit: the warning of a failed fetch, the note of a force-push
 * since the commit last resolved, and the commit remembered for the branch. */
static void
resolve_resolved(struct resolve *r, const char *branch, struct source_pin *pin)
{
	json_t *branches = json_object_get(r->state, "branches");
	const char *prev = json_string_value(json_object_get(branches, branch));
	const char *commit = pin->commit;

	if (r->fetch_error != NULL) {
		char when[32];

		source_format_time(source_json_num(r->state, "fetched_at"), when, sizeof(when));
		pin->warning = xasprintf("cannot fetch %s: %s; ran %s, the last fetched commit of "
		                         "%s (fetched %s)",
		                         r->shown, r->fetch_error, commit, branch, when);
	}
	if (prev != NULL && strcmp(prev, commit) != 0) {
		const char *a[] = { "--git-dir", r->mirror, "merge-base", "--is-ancestor",
			            prev,        commit,    NULL };
		struct gitrun_result g;

		if (gitrun(a, SOURCE_LOCAL_MS, &g) == 0) {
			if (g.status == 1)
				pin->note = xasprintf("branch %s moved non-fast-forward "
				                      "(force-push?) from %s to %s",
				                      branch, prev, commit);
			gitrun_result_free(&g);
		}
	}
	if (prev == NULL || strcmp(prev, commit) != 0) {
		json_object_set_new(branches, branch, json_string(commit));
		r->dirty = true;
	}
}

/* The commit to run into PIN->commit (with its warning or note): the pinned one, else
 * BRANCH's in the mirror, else its last known one. 0, or -errno with the message in R->d. */
static int
resolve_commit(struct resolve *r, const char *branch, struct source_pin *pin)
{
	int rc;

	if (r->src->commit != NULL) {
		pin->commit = xstrdup(r->src->commit);
		if (r->fetch_error != NULL)
			pin->warning = xasprintf("cannot fetch %s: %s; ran %s, the commit the jobs "
			                         "file was read from",
			                         r->shown, r->fetch_error, pin->commit);
		return 0;
	}
	rc = source_mirror_commit(r->mirror, branch, &pin->commit);
	if (rc == -ENOENT)
		return resolve_deleted(r, branch, pin);
	if (rc < 0) {
		source_err(r->d, "cannot read branch %s in %s: %s", branch, r->mirror,
		           strerror(-rc));
		return rc;
	}
	resolve_resolved(r, branch, pin);
	return 0;
}

int
source_resolve(const char *state_dir, const struct conf_source *src, const char *base_dir,
               struct source_pin *pin, struct diag *d)
{
	struct resolve r = { .src = src, .d = d, .lock = -1 };
	char *branch = NULL;
	int rc;

	memset(pin, 0, sizeof(*pin));
	if (src->repo == NULL)
		return source_in_place(base_dir, pin);
	rc = source_repo_url(src->repo, base_dir, &r.url);
	if (rc < 0) {
		source_err(d, "source.repo %s: %s", src->repo, strerror(-rc));
		return rc;
	}
	if (rc == 1) {
		rc = source_in_place(r.url, pin);
		resolve_free(&r);
		return rc;
	}
	if ((rc = resolve_lock(&r, state_dir)) < 0 || (rc = resolve_fetch(&r)) < 0 ||
	    (rc = resolve_branch(&r, &branch)) < 0 || (rc = resolve_commit(&r, branch, pin)) < 0)
		goto out;
	if (r.dirty && (rc = source_state_write(r.mirror, r.state)) < 0) {
		source_err(d, "cannot write the state of %s: %s", r.mirror, strerror(-rc));
		goto out;
	}
	pin->repo = r.shown;
	r.shown = NULL;
	pin->mirror = r.mirror;
	r.mirror = NULL;
	pin->branch = branch;
	branch = NULL;
out:
	if (rc < 0)
		source_pin_clear(pin);
	resolve_free(&r);
	free(branch);
	return rc;
}

char *
source_commit_subject(const char *mirror, const char *commit, int64_t timeout_ms)
{
	const char *a[] = { "--git-dir", mirror, "log", "-1", "--format=%s", commit, "--", NULL };
	char *out = NULL;

	if (!source_is_commit_id(commit) || source_git(a, timeout_ms, &out, NULL) < 0)
		return NULL;
	out[strcspn(out, "\n")] = '\0';
	if (out[0] == '\0') {
		free(out);
		return NULL;
	}
	return out;
}

void
source_pin_clear(struct source_pin *pin)
{
	if (pin == NULL)
		return;
	free(pin->dir);
	free(pin->repo);
	free(pin->mirror);
	free(pin->branch);
	free(pin->commit);
	free(pin->warning);
	free(pin->note);
	memset(pin, 0, sizeof(*pin));
}

/* The branch a bare repository's HEAD names ("ref: refs/heads/B"), read from the file, or
 * NULL (a detached or unreadable HEAD). Caller frees. */
static char *
source_head_branch(const char *mirror)
{
	static const char pfx[] = "ref: refs/heads/";
	char *path = xasprintf("%s/HEAD", mirror), *res = NULL;
	struct buf b;

	buf_init(&b, BUF_MAX_LINE);
	if (fsio_read_file(path, &b) == 0) {
		const char *t = buf_cstr(&b);
		size_t n;

		if (strncmp(t, pfx, sizeof(pfx) - 1) == 0) {
			t += sizeof(pfx) - 1;
			n = strcspn(t, "\r\n");
			if (n > 0)
				res = xstrndup(t, n);
		}
	}
	buf_free(&b);
	free(path);
	return res;
}

int
source_health(const char *state_dir, const struct conf_source *src, const char *base_dir,
              struct source_health *out)
{
	char *url = NULL, *mirror, *head;
	json_t *state;
	const char *s;
	int rc;

	memset(out, 0, sizeof(*out));
	if (src->repo == NULL)
		return 0;
	rc = source_repo_url(src->repo, base_dir, &url);
	if (rc != 0) { /* 1: a plain directory, run in place */
		free(url);
		return rc < 0 ? rc : 0;
	}
	out->fetched = true;
	out->repo = gitrun_redact(url);
	out->key = source_mirror_key(url);
	mirror = xasprintf("%s/mirrors/%s.git", state_dir, out->key);
	head = xasprintf("%s/HEAD", mirror);
	out->mirrored = source_exists(head);
	free(head);
	if (src->branch != NULL)
		out->branch = xstrdup(src->branch);
	else if (out->mirrored)
		out->branch = source_head_branch(mirror);
	state = out->mirrored ? source_state_read(mirror) : json_object();
	out->attempt_at = source_json_num(state, "attempt_at");
	out->fetched_at = source_json_num(state, "fetched_at");
	out->failing = out->attempt_at > 0 && !json_is_true(json_object_get(state, "ok"));
	if (out->failing) {
		out->failing_since = source_json_num(state, "failing_since");
		s = json_string_value(json_object_get(state, "error"));
		out->error = xstrdup(s != NULL ? s : "unknown error");
	}
	if (out->branch != NULL) {
		s = json_string_value(
		        json_object_get(json_object_get(state, "branches"), out->branch));
		if (s != NULL)
			out->commit = xstrdup(s);
	}
	json_decref(state);
	free(mirror);
	free(url);
	return 0;
}

void
source_health_clear(struct source_health *h)
{
	if (h == NULL)
		return;
	free(h->repo);
	free(h->key);
	free(h->branch);
	free(h->commit);
	free(h->error);
	memset(h, 0, sizeof(*h));
}
