/* src/source/wheels.c: the wheels of a requirements file for a worker's Python, made and cached
 * on the scheduler (wheels.h). */
#include "source/wheels.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/gitrun.h"
#include "source/source.h"
#include "source/source_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

/* Asks the interpreter its "X.Y" and where its own pip wheel may be, one per line. */
static const char wheels_probe[] =
        "import os, sys, sysconfig\n"
        "print('%d.%d' % sys.version_info[:2])\n"
        "print(sysconfig.get_config_var('WHEEL_PKG_DIR') or '')\n"
        "print(os.path.join(sysconfig.get_path('stdlib'), 'ensurepip', '_bundled'))\n";

/* What the scheduler's interpreter said (wheels_probe). Owned strings. */
struct wheels_py {
	char *version;    /* "X.Y" */
	char *pkg_dir;    /* WHEEL_PKG_DIR, or "" */
	char *bundled;    /* STDLIB/ensurepip/_bundled */
	const char *prog; /* the interpreter as given */
};

static void
wheels_py_clear(struct wheels_py *p)
{
	free(p->version);
	free(p->pkg_dir);
	free(p->bundled);
	memset(p, 0, sizeof(*p));
}

/* Line I (0-based) of TEXT, without its newline; caller frees; "" past the end. */
static char *
wheels_line(const char *text, int i)
{
	const char *p = text;

	for (; i > 0 && p != NULL; i--) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return xstrdup("");
	return xstrndup(p, strcspn(p, "\n"));
}

static int
wheels_probe_python(const char *prog, int64_t timeout_ms, struct wheels_py *py, struct diag *d)
{
	const char *args[] = { "-c", wheels_probe, NULL };
	struct gitrun_result r;
	int rc;

	memset(py, 0, sizeof(*py));
	py->prog = prog;
	rc = gitrun_prog(prog, NULL, args, timeout_ms, &r);
	if (rc < 0) {
		source_err(d, "python interpreter \"%s\" cannot be run: %s", prog, strerror(-rc));
		return rc == -ENOENT || rc == -EACCES ? -ENOENT : rc;
	}
	if (!gitrun_ok(&r)) {
		source_err(d, "python interpreter \"%s\" does not tell its version (%s)", prog,
		           r.timed_out ? "timed out" : "it failed");
		gitrun_result_free(&r);
		return r.timed_out ? -ETIMEDOUT : -EIO;
	}
	py->version = wheels_line(r.out, 0);
	py->pkg_dir = wheels_line(r.out, 1);
	py->bundled = wheels_line(r.out, 2);
	gitrun_result_free(&r);
	return 0;
}

/* "X.Y" of V ("X.Y" or "X.Y.Z"); NULL when malformed. Caller frees. */
static char *
wheels_major_minor(const char *v)
{
	size_t a = strspn(v, "0123456789"), b;

	if (a == 0 || a > 3 || v[a] != '.')
		return NULL;
	b = strspn(v + a + 1, "0123456789");
	if (b == 0 || b > 3 || (v[a + 1 + b] != '\0' && v[a + 1 + b] != '.'))
		return NULL;
	if (v[a + 1 + b] == '.') {
		size_t c = strspn(v + a + 2 + b, "0123456789");

		if (c == 0 || v[a + 2 + b + c] != '\0')
			return NULL;
	}
	return xstrndup(v, a + 1 + b);
}

static void
wheels_key(const char *version, const char *platform, const void *reqs, size_t n,
           char out[WHEELS_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef", tag[] = "eph-wheels 1";
	uint8_t md[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, sizeof(tag), (const uint8_t *)tag); /* with its NUL */
	sha256_update(&ctx, strlen(version) + 1, (const uint8_t *)version);
	sha256_update(&ctx, strlen(platform) + 1, (const uint8_t *)platform);
	if (n > 0)
		sha256_update(&ctx, n, reqs);
	sha256_digest(&ctx, sizeof(md), md);
	for (size_t i = 0; i < WHEELS_KEY_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[WHEELS_KEY_LEN] = '\0';
}

char *
wheels_pip_name(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char *best = NULL;

	if (dp == NULL)
		return NULL;
	while ((e = readdir(dp)) != NULL) {
		size_t n = strlen(e->d_name);

		if (strncmp(e->d_name, "pip-", 4) != 0 || n < 8 ||
		    strcmp(e->d_name + n - 4, ".whl") != 0)
			continue;
		if (best == NULL || strcmp(e->d_name, best) < 0) {
			free(best);
			best = xstrdup(e->d_name);
		}
	}
	closedir(dp);
	return best;
}

/* Copies the file SRC to DST (created 0644). 0 or -errno. */
static int
wheels_copy(const char *src, const char *dst)
{
	char chunk[65536];
	int in, out, rc = 0;
	ssize_t n;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while ((n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if ((rc = fsio_write_all(out, chunk, (size_t)n)) < 0)
			break;
	}
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	close(in);
	if (rc < 0)
		(void)unlink(dst);
	return rc;
}

struct wheels_build {
	const struct wheels_opts *o;
	const struct wheels_py *py;
	const char *version;  /* target "X.Y" */
	const char *platform; /* target platform tag */
	const char *reqs;     /* the requirements file's path */
	bool same;            /* the target is the scheduler's own version */
	int64_t deadline;     /* monotonic ms */
};

static int64_t
wheels_left(const struct wheels_build *b)
{
	int64_t left = b->deadline - clock_mono_ms();

	return left > 0 ? left : 1;
}

char *
wheels_pip_missing(const char *err)
{
	static const char nomatch[] = "No matching distribution found for ";
	const char *p = err != NULL ? strstr(err, nomatch) : NULL;

	if (p == NULL)
		return NULL;
	p += sizeof(nomatch) - 1;
	return xstrndup(p, strcspn(p, "\r\n"));
}

/* Why pip failed, into D; returns the code wheels_prepare returns. */
static int
wheels_pip_error(const struct wheels_build *b, const struct gitrun_result *r, const char *what,
                 struct diag *d)
{
	const char *last = NULL;
	char *miss;

	if (r->timed_out) {
		source_err(d, "%s took longer than %llds", what,
		           (long long)((b->o->timeout_ms > 0 ? b->o->timeout_ms : WHEELS_TIMEOUT) /
		                       1000));
		return -ETIMEDOUT;
	}
	if ((miss = wheels_pip_missing(r->err)) != NULL) {
		if (b->same)
			source_err(d,
			           "no wheel for requirement \"%s\" (Python %s): pip found no "
			           "distribution of it (%s)",
			           miss, b->version, b->reqs);
		else
			source_err(d,
			           "no wheel for requirement \"%s\" for Python %s (%s): pip "
			           "found no binary wheel of it for that version (%s)",
			           miss, b->version, b->platform, b->reqs);
		free(miss);
		return -ENOPKG;
	}
	/* the last "ERROR: " line says the most */
	for (const char *q = r->err; q != NULL && (q = strstr(q, "ERROR: ")) != NULL; q += 7)
		last = q;
	if (last != NULL)
		source_err(d, "%s failed: %.*s", what, (int)strcspn(last + 7, "\r\n"), last + 7);
	else if (r->signal > 0)
		source_err(d, "%s was killed by signal %d", what, r->signal);
	else
		source_err(d, "%s failed (exit code %d)", what, r->status);
	return -EIO;
}

#define WHEELS_DOWNLOAD_ARGC 16 /* wheels_download_argv's, with the NULL */

/* `pip download` into TMP of binary wheels for the target's version and platform (not the
 * scheduler's own), then A1 and A2 ("-r", REQS or "--no-deps", "pip"), into ARGV. */
static void
wheels_download_argv(const struct wheels_build *b, const char *tmp, const char *a1, const char *a2,
                     const char *argv[WHEELS_DOWNLOAD_ARGC])
{
	const char *args[] = { "-m",
		               "pip",
		               "download",
		               "--disable-pip-version-check",
		               "--only-binary=:all:",
		               "--python-version",
		               b->version,
		               "--implementation",
		               "cp",
		               "--platform",
		               b->platform,
		               "-d",
		               tmp,
		               a1,
		               a2,
		               NULL };

	_Static_assert(sizeof(args) / sizeof(args[0]) == WHEELS_DOWNLOAD_ARGC, "argv's size");
	memcpy(argv, args, sizeof(args));
}

/* The requirements' wheels into TMP. */
static int
wheels_pip_reqs(const struct wheels_build *b, const char *tmp, struct diag *d)
{
	const char *same[] = { "-m", "pip", "wheel", "--disable-pip-version-check", "-r", b->reqs,
		               "-w", tmp,   NULL };
	const char *other[WHEELS_DOWNLOAD_ARGC];
	struct gitrun_result r;
	int rc;

	wheels_download_argv(b, tmp, "-r", b->reqs, other);
	/* in ROOT: pip reads relative paths (and -r includes) from its working directory */
	rc = gitrun_prog(b->py->prog, b->o->root, b->same ? same : other, wheels_left(b), &r);
	if (rc < 0) {
		source_err(d, "cannot run %s: %s", b->py->prog, strerror(-rc));
		return rc;
	}
	if (!gitrun_ok(&r))
		rc = wheels_pip_error(b, &r, b->same ? "pip wheel" : "pip download", d);
	gitrun_result_free(&r);
	return rc;
}

/* The scheduler's Python's own pip wheel, copied into TMP. 0, -ENOENT if it has none. */
static int
wheels_local_pip(const struct wheels_build *b, const char *tmp)
{
	const char *dirs[] = { b->py->pkg_dir, b->py->bundled, "/usr/share/python-wheels" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *name, *src, *dst;
		int rc;

		if (dirs[i] == NULL || dirs[i][0] == '\0' ||
		    (name = wheels_pip_name(dirs[i])) == NULL)
			continue;
		src = xasprintf("%s/%s", dirs[i], name);
		dst = xasprintf("%s/%s", tmp, name);
		rc = wheels_copy(src, dst);
		free(src);
		free(dst);
		free(name);
		return rc;
	}
	return -ENOENT;
}

/* A pip wheel for the worker into TMP, unless the requirements brought one. */
static int
wheels_add_pip(const struct wheels_build *b, const char *tmp, struct diag *d)
{
	char *have = wheels_pip_name(tmp);
	int rc;

	if (have != NULL) {
		free(have);
		return 0;
	}
	if (!b->same) {
		/* a newer Python may need a newer pip than the scheduler's: the index's first */
		const char *args[WHEELS_DOWNLOAD_ARGC];
		struct gitrun_result r;

		wheels_download_argv(b, tmp, "--no-deps", "pip", args);
		if (gitrun_prog(b->py->prog, NULL, args, wheels_left(b), &r) == 0) {
			bool ok = gitrun_ok(&r);

			gitrun_result_free(&r);
			if (ok && (have = wheels_pip_name(tmp)) != NULL) {
				free(have);
				return 0;
			}
		}
	}
	rc = wheels_local_pip(b, tmp);
	if (rc == -ENOENT)
		source_err(d,
		           "no pip wheel to ship: %s has none of its own (Debian: install "
		           "python3-pip-whl)%s",
		           b->py->prog, b->same ? "" : " and pip could not download one");
	else if (rc < 0)
		source_err(d, "cannot copy a pip wheel into %s: %s", tmp, strerror(-rc));
	return rc;
}

/* syncfs, then TMP renamed to PATH (fsio_commit_tmp: fsync, rename, fsync the parent). */
static int
wheels_commit(const char *path, const char *tmp)
{
	int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (syncfs(fd) < 0)
		rc = -errno;
	close(fd);
	return rc < 0 ? rc : fsio_commit_tmp(path, 0);
}

static bool
wheels_ready(const char *path, void *arg)
{
	(void)arg;
	return source_is_dir(path);
}

static int
wheels_build_cb(const char *path, void *arg, struct diag *d)
{
	const struct wheels_build *b = arg;
	char *tmp = xasprintf("%s.tmp", path);
	int rc;

	if ((rc = source_rmtree(tmp)) < 0 || (mkdir(tmp, 0755) < 0 && (rc = -errno) < 0)) {
		source_err(d, "cannot make %s: %s", tmp, strerror(-rc));
		goto out;
	}
	if ((rc = wheels_pip_reqs(b, tmp, d)) < 0 || (rc = wheels_add_pip(b, tmp, d)) < 0)
		goto out;
	if ((rc = wheels_commit(path, tmp)) < 0)
		source_err(d, "cannot put %s in place: %s", path, strerror(-rc));
out:
	if (rc < 0 && source_rmtree(tmp) < 0) {
		/* a leftover .tmp: the next build removes it, and so does `eph gc` */
	}
	free(tmp);
	return rc;
}

int
wheels_prepare(const struct wheels_opts *o, struct wheels *w, struct diag *d)
{
	int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : WHEELS_TIMEOUT;
	struct wheels_build b = { .o = o, .deadline = clock_mono_ms() + timeout };
	struct wheels_py py;
	char key[WHEELS_KEY_LEN + 1], *version = NULL, *reqs = NULL, *dir = NULL;
	struct buf rb;
	int rc;

	memset(w, 0, sizeof(*w));
	w->hold_fd = -1;
	buf_init(&rb, BUF_MAX_CONF);
	if ((rc = wheels_probe_python(o->python != NULL ? o->python : "python3", timeout, &py, d)) <
	    0)
		goto out;
	version = wheels_major_minor(o->target_version != NULL ? o->target_version : py.version);
	if (version == NULL) {
		source_err(d, "\"%s\" is not a Python version (X.Y)",
		           o->target_version != NULL ? o->target_version : py.version);
		rc = -EINVAL;
		goto out;
	}
	reqs = o->requirements[0] == '/' || o->root == NULL
	               ? xstrdup(o->requirements)
	               : xasprintf("%s/%s", o->root, o->requirements);
	if ((rc = fsio_read_file(reqs, &rb)) < 0) {
		source_err(d, "cannot read the requirements file %s: %s", reqs,
		           rc == -E2BIG ? "too large" : strerror(-rc));
		goto out;
	}
	if (reqs[0] != '/') { /* pip runs in ROOT */
		char *abs = realpath(reqs, NULL);

		if (abs == NULL) {
			rc = -errno;
			source_err(d, "the requirements file %s: %s", reqs, strerror(-rc));
			goto out;
		}
		free(reqs);
		reqs = abs;
	}
	b.py = &py;
	b.version = version;
	b.platform = o->platform != NULL ? o->platform : WHEELS_PLATFORM;
	b.reqs = reqs;
	b.same = strcmp(version, py.version) == 0;
	wheels_key(version, b.same ? "" : b.platform, rb.data != NULL ? rb.data : "", rb.len, key);
	dir = xasprintf("%s/%s", o->state_dir, WHEELS_DIR);
	rc = source_cache_get(dir, key, 0700, wheels_ready, wheels_build_cb, &b, -1, b.deadline,
	                      &w->hold_fd, &w->built, d);
	if (rc == -ETIMEDOUT && diag_nerrors(d) == 0)
		source_err(d, "waiting for another build of the wheels %s/%s took too long", dir,
		           key);
	if (rc < 0)
		goto out;
	w->path = xasprintf("%s/%s", dir, key);
	w->key = xstrdup(key);
	w->version = version;
	version = NULL;
	if ((w->pip = wheels_pip_name(w->path)) == NULL) {
		source_err(d, "%s has no pip wheel (removed by hand?)", w->path);
		wheels_release(w);
		rc = -ENOENT;
	}
out:
	wheels_py_clear(&py);
	buf_free(&rb);
	free(version);
	free(reqs);
	free(dir);
	return rc;
}

void
wheels_release(struct wheels *w)
{
	if (w == NULL)
		return;
	if (w->hold_fd >= 0)
		close(w->hold_fd);
	free(w->path);
	free(w->key);
	free(w->version);
	free(w->pip);
	memset(w, 0, sizeof(*w));
	w->hold_fd = -1;
}
