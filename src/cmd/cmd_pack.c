/* src/cmd/cmd_pack.c: `eph pack`, what a remote run carries, made on the scheduler: the tar
 * archive of exactly its commit, from the mirror (source/archive.h), and, when the job has
 * Python requirements, the wheels for the worker's Python (source/wheels.h). Both block (git,
 * and pip for minutes), so the daemon runs this in a child of its own, as it runs `eph fetch`
 * (src/daemon/prepare.c), and reads its one JSON line; a stop is a SIGTERM, which ends it at
 * once with the git or pip it runs (their process groups killed, as gitrun_abort does). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "rundir/rundir.h"
#include "source/archive.h"
#include "source/gitrun.h"
#include "source/source.h"
#include "source/wheels.h"
#include "util/diag.h"
#include "util/utf8.h"
#include "util/xalloc.h"

static int cmd_pack_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_pack = {
	.name = "pack",
	.usage = "pack RUN_DIR [--python-version X.Y] [--platform TAG] [--json]",
	.summary = "make what a remote run carries: its commit's archive, its wheels (internal)",
	.help = "Internal: what the daemon runs, in a child, before a run starts on another\n"
	        "machine. Reads RUN_DIR/spec.json and makes, in the spec's state directory:\n"
	        "  - STATE/archives/<commit>.tar, `git archive` of the run's commit from its\n"
	        "    mirror (made once per commit, then reused);\n"
	        "  - when the spec has runtime.requirements: a directory of wheels of them for\n"
	        "    the worker's Python (--python-version), a pip wheel among them, made once per\n"
	        "    requirements file, version and platform in STATE/wheels, by pip run in a\n"
	        "    checkout of the commit (STATE/src/<commit>, where a relative requirements path\n"
	        "    starts). pip is run by runtime.interpreter when that is a path to an\n"
	        "    executable file on this machine, else by python3 on PATH, with this process's\n"
	        "    environment (the scheduler's pip configuration, index and credentials).\n\n"
	        "Options:\n"
	        "  --python-version X.Y  the worker's Python (required with runtime.requirements);\n"
	        "                        another than the scheduler's gets binary wheels only\n"
	        "  --platform TAG        the worker's platform tag for those (default\n"
	        "                        " WHEELS_PLATFORM ")\n"
	        "  --json                one JSON line: archive, commit, wheels, pip, python, files\n"
	        "                        (every file of the wheels directory: path, name); on\n"
	        "                        failure {\"error\": ..., \"failure\": \"source\"|\"runtime\"}\n\n"
	        "SIGTERM or SIGINT ends it at once, with the git or pip it runs.\n\n"
	        "Exit status: 0 done, 1 failed (the archive: source; the wheels: runtime), 2 bad\n"
	        "usage or a run directory without a readable spec or a pinned commit.\n",
	.exec = cmd_pack_exec,
};

/* What failed, in the words of result.json's reasons (docs/rundir.md). */
#define PACK_SOURCE  "source"
#define PACK_RUNTIME "runtime"

static void
pack_stop(int sig)
{
	(void)sig;
	gitrun_abort();
}

/* SIGTERM, SIGINT: the git or pip in progress is killed (its whole process group) and the
 * command fails at once; a wait for a cache lock gives up too (no SA_RESTART: the wait sees
 * EINTR, then gitrun_is_aborted()). Nothing half-made is left: the caches are built aside and
 * renamed into place. */
static void
pack_on_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pack_stop;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
}

/* Prints O (taken) as one JSON line; NULL (json_pack refused a string that is not UTF-8) as
 * a failure with reason FAILURE that says so. Returns false for NULL. */
static bool
pack_emit(json_t *o, const char *failure)
{
	if (o == NULL) {
		printf("{\"error\":\"a name is not valid UTF-8\",\"failure\":\"%s\"}\n", failure);
		return false;
	}
	json_dumpf(o, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(o);
	return true;
}

/* MSG made valid UTF-8 in place (JSON strings must be): each byte that does not belong to a
 * valid sequence (a file name in git's words) becomes '?'. */
static void
pack_utf8(char *msg)
{
	size_t n = strlen(msg);

	for (size_t i = 0; i < n;) {
		int len = utf8_seq((const unsigned char *)msg + i, n - i);

		if (len > 0) {
			i += (size_t)len;
		} else {
			msg[i] = '?';
			i++;
		}
	}
}

/* Prints the failure (rc, D's first message) as one JSON line or on stderr; returns
 * EPH_EXIT_FAIL. */
static int
pack_fail(const char *failure, const char *what, int rc, struct diag *d, bool json)
{
	char *msg;

	if (gitrun_is_aborted())
		msg = xasprintf("stopped by a signal while making the %s", what);
	else if (d->n == 0)
		msg = xasprintf("cannot make the %s: %s", what, strerror(-rc));
	else
		msg = d->items[0].file == NULL ? xstrdup(d->items[0].msg) : diag_format(d, 0);
	if (json) {
		pack_utf8(msg);
		(void)pack_emit(json_pack("{s:s, s:s}", "error", msg, "failure", failure), failure);
	} else {
		fprintf(stderr, "eph pack: %s\n", msg);
	}
	free(msg);
	return EPH_EXIT_FAIL;
}

/* The scheduler's interpreter that runs pip: the spec's runtime.interpreter when it is a path
 * (it has a '/') of a file this process may execute: the job names that Python, and where the
 * scheduler has it too its pip makes the wheels (a /opt/python3.12/bin/python3 that the
 * image of scheduler and workers share); else "python3" on PATH. A bare name in the spec is
 * looked up on the worker's PATH by its agent, which says nothing of ours: it is not used. */
static const char *
pack_python(const struct rundir_spec *s)
{
	const char *interp = s->runtime.interpreter;
	struct stat st;

	if (interp != NULL && strchr(interp, '/') != NULL && stat(interp, &st) == 0 &&
	    S_ISREG(st.st_mode) && access(interp, X_OK) == 0)
		return interp;
	return "python3";
}

static int
pack_namecmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* *OUT = [{"path": DIR/NAME, "name": NAME}, ...], every file of DIR (not its subdirectories:
 * a set of wheels has none) in byte order of NAME. 0, or -errno (*OUT NULL): -EILSEQ for a
 * name that is not UTF-8. */
static int
pack_files(const char *dir, json_t **out)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*out = NULL;
	if (dp == NULL)
		return -errno;
	errno = 0;
	while ((e = readdir(dp)) != NULL) {
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dp), e->d_name, &st, 0) < 0) {
			rc = -errno;
			break;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[n++] = xstrdup(e->d_name);
		errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = -errno;
	closedir(dp);
	if (rc == 0) {
		if (n > 0)
			qsort(names, n, sizeof(*names), pack_namecmp);
		*out = json_array();
		for (size_t i = 0; i < n && rc == 0; i++) {
			char *path = xasprintf("%s/%s", dir, names[i]);
			json_t *f = json_pack("{s:s, s:s}", "path", path, "name", names[i]);

			/* NULL: a name that is not UTF-8, which JSON cannot carry */
			if (f == NULL || json_array_append_new(*out, f) < 0)
				rc = -EILSEQ;
			free(path);
		}
		if (rc < 0) {
			json_decref(*out);
			*out = NULL;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* Prints what was made; false when it could not be said (pack_emit): the paths of the spec
 * are UTF-8 (JSON), so only a file name in the wheels directory can make that happen. */
static bool
pack_print(const struct rundir_spec *s, const struct archive *a, const struct wheels *w,
           json_t *files, bool json)
{
	if (json) {
		return pack_emit(json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:o}", "archive", a->path,
		                           "commit", s->source.commit, "wheels", w->path, "pip",
		                           w->pip, "python", w->version, "files",
		                           files != NULL ? json_incref(files) : json_array()),
		                 PACK_RUNTIME);
	}
	printf("archive %s (%s)\n", a->path, a->built ? "built" : "cached");
	if (w->path != NULL)
		printf("wheels %s (%s, Python %s, %zu files)\n", w->path,
		       w->built ? "built" : "cached", w->version, json_array_size(files));
	return true;
}

static int
cmd_pack_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "python-version", required_argument, NULL, 'p' },
		{ "platform", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *version = NULL, *platform = NULL, *dir;
	struct archive a = { NULL, -1, false };
	struct wheels w = { .hold_fd = -1 };
	struct source_worktree wt = { NULL, -1, false };
	struct rundir_spec s;
	json_t *files = NULL;
	bool json = false;
	struct diag d;
	int opt, rc = EPH_EXIT_OK, err;

	(void)ctx;
	pack_on_stop(); /* first: a stop at any point ends it, and what it runs */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			version = optarg;
			break;
		case 'P':
			platform = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			return cmd_usage_error(&cmd_pack, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cmd_usage_error(&cmd_pack, optind == argc ? "RUN_DIR is missing"
		                                                 : "too many arguments");
	dir = argv[optind];
	if (version != NULL && *version == '\0')
		return cmd_usage_error(&cmd_pack, "--python-version: empty");
	if (platform != NULL && *platform == '\0')
		return cmd_usage_error(&cmd_pack, "--platform: empty");

	diag_init(&d);
	if ((err = rundir_spec_read(dir, &s, &d)) < 0) {
		if (diag_nerrors(&d) > 0)
			diag_print(&d, stderr);
		else
			fprintf(stderr, "eph pack: cannot read %s/%s: %s\n", dir, RUNDIR_SPEC,
			        strerror(-err));
		diag_free(&d);
		return EPH_EXIT_USAGE;
	}
	if (s.source.mirror == NULL || s.source.commit == NULL || s.state_dir == NULL) {
		fprintf(stderr,
		        "eph pack: %s/%s: the run has no pinned commit (no \"source\"): "
		        "nothing to pack\n",
		        dir, RUNDIR_SPEC);
		rc = EPH_EXIT_USAGE;
		goto out;
	}
	if (s.runtime.requirements != NULL && version == NULL) {
		rc = cmd_usage_error(&cmd_pack,
		                     "%s/%s has runtime.requirements: --python-version "
		                     "(the worker's Python) is needed",
		                     dir, RUNDIR_SPEC);
		goto out;
	}

	if ((err = archive_get(s.state_dir, s.source.mirror, s.source.commit, 0, &a, &d)) < 0) {
		rc = pack_fail(PACK_SOURCE, "archive", err, &d, json);
		goto out;
	}
	if (s.runtime.requirements != NULL) {
		struct wheels_opts o = {
			.state_dir = s.state_dir,
			.python = pack_python(&s),
			.target_version = version,
			.platform = platform,
			.requirements = s.runtime.requirements,
		};

		/* pip runs in the source, as on the worker: the file may name others (-r, -c,
		 * ./local-package) relative to it */
		if ((err = source_checkout(s.state_dir, s.source.mirror, s.source.commit,
		                           s.source.keep_worktrees, &wt, &d)) < 0) {
			rc = pack_fail(PACK_SOURCE, "checkout", err, &d, json);
			goto out;
		}
		o.root = wt.path;
		if ((err = wheels_prepare(&o, &w, &d)) < 0) {
			rc = pack_fail(PACK_RUNTIME, "wheels", err, &d, json);
			goto out;
		}
		if ((err = pack_files(w.path, &files)) < 0) {
			diag_error(&d, (struct diag_pos){ NULL, 0, 0 }, "cannot list %s: %s",
			           w.path, strerror(-err));
			rc = pack_fail(PACK_RUNTIME, "wheels", err, &d, json);
			goto out;
		}
	}
	if (!pack_print(&s, &a, &w, files, json))
		rc = EPH_EXIT_FAIL;
out:
	json_decref(files);
	wheels_release(&w);
	source_worktree_release(&wt);
	archive_release(&a);
	rundir_spec_free(&s);
	diag_free(&d);
	return rc;
}
