/* src/agent/venv.c: the runtime phase's venvs (venv.h). */
#include "agent/venv.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/spawn.h"
#include "source/source.h"
#include "source/wheels.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define VENV_VERSION_MAX 4096 /* bytes of `sys.version` kept */
#define VENV_READ_BUF    (16u << 10)
#define VENV_KILL_GRACE  2000        /* ms its output is still read after the kill */
#define VENV_TAIL        (16u << 10) /* bytes of the build's stderr kept to read pip's error */

static void venv_err(struct diag *d, const char *fmt, ...) EPH_PRINTF(2, 3);

static void
venv_err(struct diag *d, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	diag_error(d, (struct diag_pos){ NULL, 0, 0 }, "%s", msg != NULL ? msg : fmt);
	free(msg);
}

static void say(const struct venv_opts *o, const char *fmt, ...) EPH_PRINTF(2, 3);

static void
say(const struct venv_opts *o, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	if (o->out == NULL)
		return;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	o->out(o->arg, 1, msg, (size_t)n);
	free(msg);
}

static bool
is_exec_file(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

int
venv_find_interpreter(const char *name, const char *path_env, char **out)
{
	char *cand = NULL, *abs;
	const char *p;

	*out = NULL;
	if (*name == '\0')
		return -ENOENT;
	if (strchr(name, '/') != NULL) {
		if (!is_exec_file(name))
			return -ENOENT;
		cand = xstrdup(name);
	} else {
		for (p = path_env; p != NULL && cand == NULL;) {
			size_t n = strcspn(p, ":");
			char *c = n == 0 ? xasprintf("./%s", name)
			                 : xasprintf("%.*s/%s", (int)n, p, name);

			if (is_exec_file(c))
				cand = c;
			else
				free(c);
			p = p[n] == ':' ? p + n + 1 : NULL;
		}
		if (cand == NULL)
			return -ENOENT;
	}
	if (cand[0] == '/') {
		*out = cand;
		return 0;
	}
	/* absolute, but not resolved: a venv made from .../python3 keeps that name */
	abs = realpath(".", NULL);
	if (abs == NULL) {
		int rc = -errno;

		free(cand);
		return rc;
	}
	*out = xasprintf("%s/%s", abs, cand[0] == '.' && cand[1] == '/' ? cand + 2 : cand);
	free(abs);
	free(cand);
	return 0;
}

void
venv_key(const char *interp_real, const char *version, const void *reqs, size_t n,
         const char *wheels, char out[VENV_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t md[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;

	static_assert(SHA256_DIGEST_SIZE * 2 >= VENV_KEY_LEN, "the key is part of a SHA-256");
	sha256_init(&ctx);
	sha256_update(&ctx, strlen(interp_real) + 1, (const uint8_t *)interp_real);
	sha256_update(&ctx, strlen(version) + 1, (const uint8_t *)version);
	if (n > 0)
		sha256_update(&ctx, n, reqs);
	if (wheels != NULL) {
		static const char tag[] = "\0wheels"; /* and its own NUL */

		sha256_update(&ctx, sizeof(tag), (const uint8_t *)tag);
		sha256_update(&ctx, strlen(wheels), (const uint8_t *)wheels);
	}
	sha256_digest(&ctx, sizeof(md), md);
	for (size_t i = 0; i < VENV_KEY_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[VENV_KEY_LEN] = '\0';
}

/* ---- running the interpreter and pip */

/* Runs ARGV (ARGV[0] a path) in CWD with O->envp, in its own process group, stdin /dev/null.
 * Its stdout goes to CAPTURE when not NULL (else to O->out), its stderr to O->out. Returns 0
 * with *STATUS (waitpid's) once it ended and its output is read; -ECANCELED / -ETIMEDOUT (it
 * was killed, with its process group) when O->cancel_fd fired or DEADLINE (monotonic ms; 0 =
 * none) passed; -errno when it could not be started (*WHY: what failed, static). After the
 * kill, its output is read for VENV_KILL_GRACE ms at most: a descendant that left the process
 * group may keep the pipes open for ever. */
static int
run_child(const struct venv_opts *o, char *const argv[], const char *cwd, struct buf *capture,
          int64_t deadline, int *status, const char **why)
{
	struct spawn_opts so = {
		.argv = argv, .envp = o->envp, .path = argv[0], .cwd = cwd, .setsid = false
	};
	struct spawn sp;
	int fds[2], rc, st; /* its stdout, its stderr */
	char *rbuf = NULL;
	bool killed = false;
	int64_t killed_at = 0;
	ssize_t n;
	pid_t pid;

	*why = "cannot start";
	if ((rc = spawn_start(&so, &sp)) < 0)
		return rc;
	pid = sp.pid;
	fds[0] = sp.out;
	fds[1] = sp.err;
	if (sp.stage != SPAWN_OK) {
		*why = sp.stage == SPAWN_CHDIR  ? "cannot enter its directory"
		       : sp.stage == SPAWN_EXEC ? "cannot execute it"
		                                : "cannot set it up";
		rc = -sp.stage_err;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		goto out;
	}
	rbuf = xmalloc(VENV_READ_BUF);
	for (;;) {
		/* once killed, the cancel fd (a signalfd stays readable) is no longer watched */
		struct pollfd pf[3] = { { fds[0], POLLIN, 0 },
			                { fds[1], POLLIN, 0 },
			                { killed ? -1 : o->cancel_fd, POLLIN, 0 } };
		int wait_ms = -1;
		int64_t now = clock_mono_ms();

		if (fds[0] < 0 && fds[1] < 0)
			break;
		if (!killed && deadline > 0 && now >= deadline) {
			rc = -ETIMEDOUT;
			kill(-pid, SIGKILL);
			killed = true;
			killed_at = now;
		}
		if (killed) {
			if (now - killed_at >= VENV_KILL_GRACE)
				break; /* what still holds the pipes is not ours to wait for */
			wait_ms = (int)(killed_at + VENV_KILL_GRACE - now);
		} else if (deadline > 0) {
			int64_t left = deadline - now;

			wait_ms = (int)(left > 60000 ? 60000 : left);
		}
		if (poll(pf, 3, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			kill(-pid, SIGKILL);
			killed = true;
			break;
		}
		if (!killed && (pf[2].revents & POLLIN) != 0) {
			rc = -ECANCELED;
			kill(-pid, SIGKILL);
			killed = true;
			killed_at = clock_mono_ms();
		}
		for (int s = 0; s < 2; s++) {
			int *fd = &fds[s];

			if (*fd < 0 || pf[s].revents == 0)
				continue;
			n = read(*fd, rbuf, VENV_READ_BUF);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(*fd);
				*fd = -1;
				continue;
			}
			if (s == 0 && capture != NULL) {
				if (buf_append(capture, rbuf, (size_t)n) < 0) {
					/* capped: the rest is dropped */
				}
			} else if (o->out != NULL)
				o->out(o->arg, s, rbuf, (size_t)n);
		}
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			if (rc == 0)
				rc = -errno;
			break;
		}
	}
	*status = st;
out:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(rbuf);
	return rc;
}

/* "exit code 1", "killed by signal 9 (SIGKILL)"; caller frees. */
static char *
status_text(int st)
{
	if (WIFEXITED(st))
		return xasprintf("exit code %d", WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return xasprintf("killed by signal %d (SIG%s)", WTERMSIG(st),
		                 sigabbrev_np(WTERMSIG(st)) != NULL ? sigabbrev_np(WTERMSIG(st))
		                                                    : "?");
	return xasprintf("status %#x", st);
}

/* Reports a run_child failure RC of WHAT into D; returns the code venv_prepare returns. */
static int
child_error(struct diag *d, const char *what, int rc, const char *why, const struct venv_opts *o)
{
	if (rc == -ECANCELED) {
		venv_err(d, "cancelled during %s", what);
		return rc;
	}
	if (rc == -ETIMEDOUT) {
		venv_err(d, "%s took longer than the run's timeout (%lld s)", what,
		         (long long)(o->timeout_ms / 1000));
		return rc;
	}
	venv_err(d, "%s: %s: %s", what, why, strerror(-rc));
	return -EIO;
}

static int
interpreter_version(const struct venv_opts *o, const char *interp, char **version, struct diag *d)
{
	char *argv[] = { (char *)interp, (char *)"-c", (char *)"import sys; print(sys.version)",
		         NULL };
	const char *why;
	struct buf b;
	int rc, st = 0;
	char *what = xasprintf("python interpreter \"%s\" (%s)", o->interpreter, interp);
	int64_t deadline = o->timeout_ms > 0 ? clock_mono_ms() + o->timeout_ms : 0;

	*version = NULL;
	buf_init(&b, VENV_VERSION_MAX);
	/* its stderr (a broken interpreter's complaint) goes to the run's output.log */
	rc = run_child(o, argv, NULL, &b, deadline, &st, &why);
	if (rc < 0) {
		rc = child_error(d, what, rc, why, o);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || b.len == 0) {
		char *s = status_text(st);

		venv_err(d, "%s does not tell its version (%s)", what, s);
		free(s);
		rc = -EIO;
	} else {
		while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
			b.len--;
		*version = xstrndup(buf_cstr(&b), b.len);
	}
	buf_free(&b);
	free(what);
	return rc;
}

static bool
venv_ready(const char *path)
{
	char *m = xasprintf("%s/%s", path, VENV_READY);
	struct stat st;
	bool ok = stat(m, &st) == 0 && S_ISREG(st.st_mode);

	free(m);
	return ok;
}

/* The .pth file through which a profiled run's Python starts eph's hook (docs/profile.md):
 * run at start-up from the venv's site-packages, also with -E (no PYTHONPATH); it does
 * nothing unless the agent set EPH_PROFILE_HOOK and EPH_PROFILE_DIR for a profiled run. */
static const char venv_pth[] =
        "import os; h = os.environ.get('EPH_PROFILE_HOOK'); "
        "h and os.environ.get('EPH_PROFILE_DIR') and exec(compile(open(h).read(), h, 'exec'), "
        "{'__file__': h, '__name__': 'eph_profile'})\n";

/* Writes eph-profile.pth into each site-packages of the venv at PATH (none: nothing). 0 or
 * -errno. */
static int
write_pth(const char *path)
{
	char *pat = xasprintf("%s/lib/python*/site-packages", path);
	glob_t g;
	int rc = 0;

	rc = glob(pat, GLOB_NOSORT, NULL, &g);
	free(pat);
	if (rc == GLOB_NOMATCH)
		return 0; /* not a CPython layout: the PYTHONPATH hook alone */
	if (rc != 0)
		return -EIO;
	for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
		char *f = xasprintf("%s/eph-profile.pth", g.gl_pathv[i]);

		rc = fsio_write_atomic(f, venv_pth, strlen(venv_pth), 0644, FSIO_NOSYNC);
		free(f);
	}
	globfree(&g);
	return rc;
}

static int
write_marker(const char *path, const char *interp, const char *version, const char *reqs)
{
	char *m = xasprintf("%s/%s", path, VENV_READY);
	char *text =
	        xasprintf("interpreter %s\nversion %s\nrequirements %s\n", interp, version, reqs);
	int fd, rc;

	fd = open(m, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = fsio_write_all(fd, text, strlen(text));
	/* the venv's files first, then the marker that says they are complete */
	if (rc == 0 && (syncfs(fd) < 0 || fsync(fd) < 0))
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
out:
	free(m);
	free(text);
	return rc;
}

/* The build's output goes on to O->out, and the last VENV_TAIL bytes of its stderr are kept, to
 * name the requirement pip found no wheel for. */
struct venv_tee {
	const struct venv_opts *o;
	struct buf tail;
};

static void
venv_tee_out(void *arg, int stream, const void *p, size_t n)
{
	struct venv_tee *t = arg;

	if (t->o->out != NULL)
		t->o->out(t->o->arg, stream, p, n);
	if (stream != 1)
		return;
	if (n >= VENV_TAIL) {
		p = (const char *)p + (n - VENV_TAIL);
		n = VENV_TAIL;
		buf_reset(&t->tail);
	} else if (t->tail.len + n > VENV_TAIL) {
		size_t drop = t->tail.len + n - VENV_TAIL;

		memmove(t->tail.data, t->tail.data + drop, t->tail.len - drop);
		t->tail.len -= drop;
	}
	if (buf_append(&t->tail, p, n) < 0) {
		/* cannot happen: it fits */
	}
}

/* What one build step runs. */
struct venv_step {
	const char *what;
	char **argv;
};

/* Builds the venv at PATH (under LOCK_EX). On failure nothing of it is left. */
static int
build(const struct venv_opts *o, const char *interp, const char *version, const char *reqs,
      const char *path, int64_t deadline, struct diag *d)
{
	char *py = xasprintf("%s/bin/python", path), *pipwhl = NULL, *pipmain = NULL;
	char *argv1[] = { (char *)interp, (char *)"-m", (char *)"venv", (char *)path, NULL };
	char *argv1_off[] = { (char *)interp,          (char *)"-m", (char *)"venv",
		              (char *)"--without-pip", (char *)path, NULL };
	char *argv2[] = { py,
		          (char *)"-m",
		          (char *)"pip",
		          (char *)"install",
		          (char *)"--disable-pip-version-check",
		          (char *)"-r",
		          (char *)reqs,
		          NULL };
	char *argv2_off[] = { py,
		              NULL, /* WHEELS/PIP.whl/pip */
		              (char *)"install",
		              (char *)"--disable-pip-version-check",
		              (char *)"--no-index",
		              (char *)"--find-links",
		              (char *)o->wheels,
		              (char *)"-r",
		              (char *)reqs,
		              NULL };
	struct venv_step steps[2] = { { "python -m venv", argv1 }, { "pip install", argv2 } };
	struct venv_tee tee = { .o = o };
	struct venv_opts to = *o;
	const char *why;
	int rc, st = 0, step;
	int64_t t0 = clock_mono_ms();

	buf_init(&tee.tail, VENV_TAIL + 1);
	to.out = venv_tee_out;
	to.arg = &tee;
	if (o->wheels != NULL) {
		if ((pipwhl = wheels_pip_name(o->wheels)) == NULL) {
			venv_err(d,
			         "no pip wheel (pip-*.whl) in %s: the venv cannot be built offline",
			         o->wheels);
			rc = -EIO;
			goto out;
		}
		pipmain = xasprintf("%s/%s/pip", o->wheels, pipwhl);
		argv2_off[1] = pipmain;
		steps[0] = (struct venv_step){ "python -m venv --without-pip", argv1_off };
		steps[1] = (struct venv_step){ "pip install (offline)", argv2_off };
	}
	if ((rc = source_rmtree(path)) < 0) {
		venv_err(d, "cannot remove the unfinished venv %s: %s", path, strerror(-rc));
		goto out;
	}
	if (o->wheels != NULL)
		say(o,
		    "eph: building venv %s offline: %s -m venv --without-pip, then pip (%s) install --no-index --find-links %s -r %s\n",
		    path, interp, pipwhl, o->wheels, reqs);
	else
		say(o, "eph: building venv %s: %s -m venv, then pip install -r %s\n", path, interp,
		    reqs);
	for (step = 0; step < 2; step++) {
		const char *what = steps[step].what;

		rc = run_child(&to, steps[step].argv, o->root, NULL, deadline, &st, &why);
		if (rc < 0) {
			rc = child_error(d, what, rc, why, o);
			break;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			char *s = status_text(st),
			     *miss = wheels_pip_missing(tee.tail.len > 0 ? buf_cstr(&tee.tail)
			                                                 : NULL);

			if (step == 1 && o->wheels != NULL && miss != NULL)
				venv_err(
				        d,
				        "no wheel for requirement \"%s\" in %s (an offline install: "
				        "no package index is used); pip's output is in the run's "
				        "output.log",
				        miss, o->wheels);
			else
				venv_err(d, "%s failed (%s); its output is in the run's output.log",
				         what, s);
			free(miss);
			free(s);
			rc = -EIO;
			break;
		}
	}
	if (rc == 0 && (rc = write_pth(path)) < 0)
		venv_err(d, "cannot write eph-profile.pth into the venv %s: %s", path,
		         strerror(-rc));
	else if (rc == 0 && (rc = write_marker(path, interp, version, reqs)) < 0)
		venv_err(d, "cannot complete the venv %s: %s", path, strerror(-rc));
	if (rc < 0) {
		int r2 = source_rmtree(path);

		say(o, "eph: venv build failed; %s\n",
		    r2 == 0 ? "removed what it made" : "could not remove what it made");
	} else {
		say(o, "eph: venv built in %.1f s\n", (double)(clock_mono_ms() - t0) / 1000.0);
	}
out:
	buf_free(&tee.tail);
	free(py);
	free(pipwhl);
	free(pipmain);
	return rc;
}

int
venv_identify(const struct venv_opts *o, struct venv_id *id, struct diag *d)
{
	char *real = NULL;
	struct buf rb;
	int rc;

	memset(id, 0, sizeof(*id));
	buf_init(&rb, BUF_MAX_CONF);
	if ((rc = venv_find_interpreter(o->interpreter, o->path_env, &id->interp)) < 0) {
		if (strchr(o->interpreter, '/') != NULL)
			venv_err(d, "python interpreter \"%s\" not found (or not executable)",
			         o->interpreter);
		else
			venv_err(d, "python interpreter \"%s\" not found on PATH", o->interpreter);
		goto out;
	}
	if ((real = realpath(id->interp, NULL)) == NULL) {
		rc = -errno;
		venv_err(d, "python interpreter \"%s\": %s", id->interp, strerror(-rc));
		goto out;
	}
	if ((rc = interpreter_version(o, id->interp, &id->version, d)) < 0)
		goto out;
	id->reqs = o->requirements[0] == '/' || o->root == NULL
	                   ? xstrdup(o->requirements)
	                   : xasprintf("%s/%s", o->root, o->requirements);
	if ((rc = fsio_read_file(id->reqs, &rb)) < 0) {
		if (rc == -E2BIG)
			venv_err(d, "requirements file %s is larger than %u bytes", id->reqs,
			         BUF_MAX_CONF);
		else
			venv_err(d, "cannot read the requirements file %s: %s", id->reqs,
			         strerror(-rc));
		goto out;
	}
	venv_key(real, id->version, rb.data != NULL ? rb.data : "", rb.len, o->wheels, id->key);
out:
	if (rc < 0)
		venv_id_clear(id);
	buf_free(&rb);
	free(real);
	return rc;
}

void
venv_id_clear(struct venv_id *id)
{
	if (id == NULL)
		return;
	free(id->interp);
	free(id->version);
	free(id->reqs);
	memset(id, 0, sizeof(*id));
}

static bool
venv_ready_cb(const char *path, void *arg)
{
	(void)arg;
	return venv_ready(path);
}

struct venv_build_arg {
	const struct venv_opts *o;
	const struct venv_id *id;
	int64_t deadline;
	struct venv *v;
};

static int
venv_build_cb(const char *path, void *arg, struct diag *d)
{
	struct venv_build_arg *a = arg;

	a->v->build_attempted = true;
	return build(a->o, a->id->interp, a->id->version, a->id->reqs, path, a->deadline, d);
}

int
venv_prepare(const struct venv_opts *o, struct venv *v, struct diag *d)
{
	int64_t deadline = o->timeout_ms > 0 ? clock_mono_ms() + o->timeout_ms : 0;
	struct venv_build_arg a = { o, NULL, deadline, v };
	struct venv_id id;
	char *dir;
	int rc;

	memset(v, 0, sizeof(*v));
	v->hold_fd = -1;
	if ((rc = venv_identify(o, &id, d)) < 0)
		return rc;
	a.id = &id;
	dir = xasprintf("%s/venvs", o->state_dir);
	rc = source_cache_get(dir, id.key, 0755, venv_ready_cb, venv_build_cb, &a, o->cancel_fd,
	                      deadline, &v->hold_fd, &v->built, d);
	/* given up while waiting for another run's build (ours reports its own) */
	if (rc == -ECANCELED && !v->build_attempted)
		venv_err(d, "cancelled while waiting for another run to build the venv");
	else if (rc == -ETIMEDOUT && !v->build_attempted)
		venv_err(d,
		         "waiting for another run to build the venv took longer than the run's "
		         "timeout (%lld s)",
		         (long long)(o->timeout_ms / 1000));
	if (rc == 0) {
		v->path = xasprintf("%s/%s", dir, id.key);
		v->key = xstrdup(id.key);
		v->interpreter = id.interp;
		id.interp = NULL;
	}
	venv_id_clear(&id);
	free(dir);
	return rc;
}

void
venv_release(struct venv *v)
{
	if (v == NULL)
		return;
	if (v->hold_fd >= 0)
		close(v->hold_fd);
	free(v->path);
	free(v->key);
	free(v->interpreter);
	memset(v, 0, sizeof(*v));
	v->hold_fd = -1;
}
