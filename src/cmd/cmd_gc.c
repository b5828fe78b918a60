/* src/cmd/cmd_gc.c: `eph gc`, removes the cached worktrees, venvs and mirrors that no job's
 * current configuration can use and no live run holds, and says how much it freed. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "agent/venv.h"
#include "cmd/cmd.h"
#include "conf/conf.h"
#include "rundir/rundir.h"
#include "source/archive.h"
#include "source/gitrun.h"
#include "source/source.h"
#include "source/wheels.h"
#include "util/diag.h"
#include "util/instance.h"
#include "util/units.h"
#include "util/xalloc.h"

#define GC_VENV_DAYS 7 /* default: venvs used within this many days are kept */

static int cmd_gc_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_gc = {
	.name = "gc",
	.usage = "gc [--dry-run] [--json] [--venv-days N]",
	.summary =
	        "remove cached checkouts, venvs, mirrors and remote runs' archives and wheels that no job can use",
	.help = "Removes from the state directory what the jobs file's current configuration\n"
	        "cannot use and no live run holds:\n"
	        "  worktrees (STATE/src/COMMIT)  every commit but the current tip of the\n"
	        "                                configured branch (as last fetched; gc does not\n"
	        "                                fetch)\n"
	        "  venvs (STATE/venvs/KEY)       those no job's interpreter and requirements\n"
	        "                                file make (when that cannot be known for\n"
	        "                                every job, only those unused --venv-days days)\n"
	        "  mirrors (STATE/mirrors/K.git) those of repositories no longer configured (kept\n"
	        "                                while a held worktree borrows their objects)\n"
	        "  archives (STATE/archives/COMMIT.tar)  every commit but the current tip, as\n"
	        "                                for worktrees\n"
	        "  wheels (STATE/wheels/KEY)     those unused for --venv-days days\n"
	        "  a slurm executor's shared_dir/INSTANCE: its archives, sources, wheels and\n"
	        "                                venvs unused for --venv-days days and named by\n"
	        "                                no run still in its runs/ (a queued job holds\n"
	        "                                nothing yet)\n"
	        "Anything a live run holds is kept and listed as busy. The state directory is\n"
	        "meant for one jobs file: mirrors of another jobs file's repository are removed.\n\n"
	        "Options:\n"
	        "  --dry-run      say what would be removed, remove nothing\n"
	        "  --json         print what was removed and kept as JSON\n"
	        "  --venv-days N  when a job's venv cannot be identified (its interpreter or\n"
	        "                 requirements file is missing here), keep the venvs used within\n"
	        "                 the last N days (default 7); wheels too\n",
	.exec = cmd_gc_exec,
};

struct gc {
	const char *state;
	bool dry_run;
	bool json;
	int64_t venv_days;
	/* what the configuration uses (gc_used) */
	char *keep_commit;  /* the configured branch's tip, as last fetched; NULL if unknown */
	char *keep_mirror;  /* "KEY.git" of source.repo's mirror; NULL without one */
	char *in_place;     /* source.repo when it is a plain directory; NULL otherwise */
	bool mirrors_known; /* false: source.repo cannot be read, every mirror is kept */
	/* what was done */
	json_t *removed, *kept; /* arrays of {"kind", "path", "bytes" | "reason"} */
	uint64_t freed;
	int errors;
};

static void
gc_kept(struct gc *g, const char *kind, const char *path, const char *reason)
{
	json_array_append_new(g->kept, json_pack("{s:s, s:s, s:s}", "kind", kind, "path", path,
	                                         "reason", reason));
	if (!g->json)
		printf("kept %s %s: %s\n", kind, path, reason);
}

/* Removes DIR/KEY (an entry of the cache convention, source.h) unless held; a mirror also
 * unless a worktree borrows its objects. */
static void
gc_remove(struct gc *g, const char *kind, const char *dir, const char *key)
{
	char *path = xasprintf("%s/%s", dir, key);
	uint64_t bytes = 0;
	int rc = strcmp(kind, "mirror") == 0
	                 ? source_mirror_remove(g->state, key, g->dry_run, &bytes)
	                 : source_cache_remove(dir, key, g->dry_run, &bytes);
	char size[32];

	if (rc == 0) {
		g->freed += bytes;
		json_array_append_new(g->removed, json_pack("{s:s, s:s, s:I}", "kind", kind, "path",
		                                            path, "bytes", (json_int_t)bytes));
		units_format_size(bytes, size, sizeof(size));
		if (!g->json)
			printf("%s %s %s (%s)\n", g->dry_run ? "would remove" : "removed", kind,
			       path, size);
	} else if (rc == -EBUSY) {
		gc_kept(g, kind, path, "in use by a live run");
	} else if (rc == -ENOTEMPTY) {
		gc_kept(g, kind, path, "a worktree a live run holds borrows its objects");
	} else if (rc != -ENOENT) {
		fprintf(stderr, "eph gc: cannot remove %s: %s\n", path, strerror(-rc));
		g->errors++;
	}
	free(path);
}

/* The entries of DIR: names with SUFFIX (".git", or "" for any directory), with ".tmp"
 * leftovers folded into their entry, without lock files (.lock, .build). Sorted; caller frees. */
static char **
gc_entries(const char *dir, const char *suffix, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), sl = strlen(suffix);
		char *name;
		bool dup = false;

		if (e->d_name[0] == '.')
			continue;
		if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0)
			len -= 4;
		else if ((len > 5 && strcmp(e->d_name + len - 5, ".lock") == 0) ||
		         (len > 6 && strcmp(e->d_name + len - 6, ".build") == 0))
			continue;
		name = xstrndup(e->d_name, len);
		if (len <= sl || strcmp(name + len - sl, suffix) != 0 ||
		    (sl == 0 && (len > 5 && strcmp(name + len - 5, ".json") == 0))) {
			free(name);
			continue;
		}
		for (size_t i = 0; i < *n && !dup; i++)
			dup = strcmp(v[i], name) == 0;
		if (dup) {
			free(name);
			continue;
		}
		v = xreallocarray(v, *n + 1, sizeof(char *));
		v[(*n)++] = name;
	}
	closedir(d);
	for (size_t i = 1; i < *n; i++) /* few entries: insertion sort */
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v;
}

static void
gc_free_entries(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Last use of DIR/KEY: its lock file's mtime, else its own. */
static time_t
gc_last_use(const char *dir, const char *key)
{
	char *p = xasprintf("%s/%s.lock", dir, key), *q = xasprintf("%s/%s", dir, key);
	struct stat st;
	time_t t = 0;

	if (stat(p, &st) == 0 || stat(q, &st) == 0)
		t = st.st_mtime;
	free(p);
	free(q);
	return t;
}

/* gc_kept for the entry DIR/KEY. */
static void
gc_kept_entry(struct gc *g, const char *kind, const char *dir, const char *key, const char *reason)
{
	char *p = xasprintf("%s/%s", dir, key);

	gc_kept(g, kind, p, reason);
	free(p);
}

/* Keeps DIR/KEY (saying so) when it was used within the last --venv-days days; true if kept. */
static bool
gc_kept_if_recent(struct gc *g, const char *kind, const char *dir, const char *key)
{
	char *why;

	if (gc_last_use(dir, key) < time(NULL) - g->venv_days * 86400)
		return false;
	why = xasprintf("used within the last %lld days", (long long)g->venv_days);
	gc_kept_entry(g, kind, dir, key, why);
	free(why);
	return true;
}

/* The keys of the venvs that the jobs' current configuration makes (json array of strings);
 * *UNKNOWN tells whether some job's venv could not be identified. ROOT is the source root
 * the requirements files are read from, NULL when it is not checked out here. */
static json_t *
gc_venv_keys(struct cmd_ctx *ctx, const char *state, const char *root, bool *unknown)
{
	json_t *keys = json_array();
	extern char **environ;

	*unknown = false;
	for (size_t i = 0; i < ctx->conf->njobs; i++) {
		const struct conf_job *j = &ctx->conf->jobs[i];
		const char *path_env = getenv("PATH");
		struct venv_id id;
		struct diag d;

		if (j->requirements == NULL)
			continue;
		if (root == NULL) {
			*unknown = true;
			continue;
		}
		for (size_t e = 0; e < j->env.n; e++)
			if (strncmp(j->env.v[e], "PATH=", 5) == 0)
				path_env = j->env.v[e] + 5;
		diag_init(&d);
		struct venv_opts o = {
			.state_dir = state,
			.interpreter = j->interpreter != NULL ? j->interpreter : "python3",
			.requirements = j->requirements,
			.root = root,
			.envp = environ,
			.path_env = path_env,
			.cancel_fd = -1,
			.timeout_ms = 30000,
		};
		if (venv_identify(&o, &id, &d) == 0) {
			json_array_append_new(keys, json_string(id.key));
			venv_id_clear(&id);
		} else {
			char *why = d.n > 0 ? diag_format(&d, 0) : xstrdup("eph: unknown");

			fprintf(stderr, "eph gc: the venv of job %s cannot be identified: %s\n",
			        j->name, strncmp(why, "eph: ", 5) == 0 ? why + 5 : why);
			free(why);
			*unknown = true;
		}
		diag_free(&d);
	}
	return keys;
}

static bool
gc_key_in(const json_t *keys, const char *key)
{
	size_t i;
	json_t *k;

	json_array_foreach(keys, i, k) if (strcmp(json_string_value(k), key) == 0) return true;
	return false;
}

/* Parses the options into G. -1 to go on, else the exit status. */
static int
gc_options(struct gc *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "venv-days", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	g->venv_days = GC_VENV_DAYS;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			g->dry_run = true;
			break;
		case 'j':
			g->json = true;
			break;
		case 'v':
			if (units_parse_count(optarg, 0, 36500, &g->venv_days) < 0)
				return cmd_usage_error(&cmd_gc,
				                       "--venv-days needs a number of days");
			break;
		default:
			return cmd_usage_error(&cmd_gc, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 0)
		return cmd_usage_error(&cmd_gc, "too many arguments");
	return -1;
}

/* What the configuration uses: the mirror of source.repo and its branch's tip. */
static void
gc_used(struct gc *g, const struct conf *c)
{
	const struct conf_source *src = &c->source;
	char *url = NULL, *key, *mirror;
	struct stat st;
	int rc;

	g->mirrors_known = true;
	if (src->repo == NULL)
		return;
	rc = source_repo_url(src->repo, c->dir, &url);
	if (rc == 1) {
		g->in_place = url; /* a plain directory: in place */
		return;
	}
	if (rc < 0) {
		char *shown = gitrun_redact(src->repo);

		fprintf(stderr, "eph gc: source.repo %s: %s; keeping every mirror\n", shown,
		        strerror(-rc));
		free(shown);
		g->mirrors_known = false;
		free(url);
		return;
	}
	key = source_mirror_key(url);
	g->keep_mirror = xasprintf("%s.git", key);
	mirror = xasprintf("%s/mirrors/%s", g->state, g->keep_mirror);
	if (stat(mirror, &st) == 0 &&
	    source_mirror_commit(mirror, src->branch, &g->keep_commit) < 0)
		g->keep_commit = NULL;
	free(mirror);
	free(key);
	free(url);
}

/* STATE/SUB's entries KIND, named <commit>SUFFIX: all but the configured branch's tip. */
static void
gc_all_but_tip(struct gc *g, const char *kind, const char *sub, const char *suffix)
{
	char *dir = xasprintf("%s/%s", g->state, sub), **v;
	char *keep = g->keep_commit != NULL ? xasprintf("%s%s", g->keep_commit, suffix) : NULL;
	size_t n;

	v = gc_entries(dir, suffix, &n);
	for (size_t i = 0; i < n; i++) {
		if (keep != NULL && strcmp(v[i], keep) == 0)
			gc_kept_entry(g, kind, dir, v[i], "the configured branch's current commit");
		else
			gc_remove(g, kind, dir, v[i]);
	}
	gc_free_entries(v, n);
	free(keep);
	free(dir);
}

/* The source root the requirements files are read from; NULL when it is not here. Caller
 * frees. */
static char *
gc_source_root(const struct gc *g, const struct conf *c)
{
	char *wt;
	struct stat st;

	if (c->source.repo == NULL)
		return xstrdup(c->dir);
	if (g->in_place != NULL)
		return xstrdup(g->in_place);
	if (g->keep_commit == NULL)
		return NULL;
	wt = xasprintf("%s/src/%s", g->state, g->keep_commit);
	if (stat(wt, &st) == 0)
		return wt;
	free(wt);
	return NULL;
}

/* STATE/venvs: those no job's interpreter and requirements make (when some job's cannot be
 * known, only those unused for --venv-days). */
static void
gc_venvs(struct gc *g, struct cmd_ctx *ctx)
{
	char *root = gc_source_root(g, ctx->conf), *dir, **v;
	bool unknown;
	json_t *keys = gc_venv_keys(ctx, g->state, root, &unknown);
	size_t n;

	dir = xasprintf("%s/venvs", g->state);
	v = gc_entries(dir, "", &n);
	for (size_t i = 0; i < n; i++) {
		if (gc_key_in(keys, v[i]))
			gc_kept_entry(g, "venv", dir, v[i],
			              "a job's current interpreter and requirements");
		else if (!unknown || !gc_kept_if_recent(g, "venv", dir, v[i]))
			gc_remove(g, "venv", dir, v[i]);
	}
	gc_free_entries(v, n);
	free(dir);
	json_decref(keys);
	free(root);
}

/* STATE/wheels: the sets unused for --venv-days days (which sets the jobs use depends on the
 * workers' Python versions, which only the executors know). */
static void
gc_wheels(struct gc *g)
{
	char *dir = xasprintf("%s/%s", g->state, WHEELS_DIR), **v;
	size_t n;

	v = gc_entries(dir, "", &n);
	for (size_t i = 0; i < n; i++) {
		if (!gc_kept_if_recent(g, "wheels", dir, v[i]))
			gc_remove(g, "wheels", dir, v[i]);
	}
	gc_free_entries(v, n);
	free(dir);
}

/* STATE/mirrors: those of repositories no longer configured. */
static void
gc_mirrors(struct gc *g)
{
	char *dir = xasprintf("%s/mirrors", g->state), **v;
	size_t n;

	v = gc_entries(dir, ".git", &n);
	for (size_t i = 0; i < n; i++) {
		if (!g->mirrors_known)
			gc_kept_entry(g, "mirror", dir, v[i], "source.repo cannot be read");
		else if (g->keep_mirror != NULL && strcmp(v[i], g->keep_mirror) == 0)
			gc_kept_entry(g, "mirror", dir, v[i], "the configured repository");
		else
			gc_remove(g, "mirror", dir, v[i]);
	}
	gc_free_entries(v, n);
	free(dir);
}

/* Whether PATH is in KEEP (a json array of strings). */
static bool
gc_path_in(const json_t *keep, const char *path)
{
	size_t i;
	json_t *v;

	json_array_foreach(keep, i, v)
	{
		if (strcmp(json_string_value(v), path) == 0)
			return true;
	}
	return false;
}

/* What the runs under BASE/runs still name (a job may wait in Slurm's queue for days before
 * its agent holds anything): their archives, wheels and BASE/sources/COMMIT. A json array of
 * paths; a run whose spec cannot be read names nothing. */
static json_t *
gc_shared_named(const char *base)
{
	char *runs = xasprintf("%s/runs", base), **v;
	json_t *keep = json_array();
	size_t n;

	v = gc_entries(runs, "", &n);
	for (size_t i = 0; i < n; i++) {
		char *dir = xasprintf("%s/%s", runs, v[i]);
		struct rundir_spec sp;
		struct diag d;

		diag_init(&d);
		if (rundir_spec_read(dir, &sp, &d) == 0) {
			if (sp.source.archive != NULL)
				json_array_append_new(keep, json_string(sp.source.archive));
			if (sp.runtime.wheels != NULL)
				json_array_append_new(keep, json_string(sp.runtime.wheels));
			if (sp.source.commit != NULL) {
				char *src = xasprintf("%s/sources/%s", base, sp.source.commit);

				json_array_append_new(keep, json_string(src));
				free(src);
			}
			rundir_spec_free(&sp);
		}
		diag_free(&d);
		free(dir);
	}
	gc_free_entries(v, n);
	free(runs);
	return keep;
}

/* BASE/SUB's entries KIND (named with SUFFIX): those neither named by a run in KEEP nor used
 * within --venv-days days. */
static void
gc_shared_sub(struct gc *g, const char *base, const json_t *keep, const char *kind, const char *sub,
              const char *suffix)
{
	char *dir = xasprintf("%s/%s", base, sub), **v;
	size_t n;

	v = gc_entries(dir, suffix, &n);
	for (size_t i = 0; i < n; i++) {
		char *p = xasprintf("%s/%s", dir, v[i]);

		if (gc_path_in(keep, p))
			gc_kept(g, kind, p, "named by a run of the shared directory");
		else if (!gc_kept_if_recent(g, kind, dir, v[i]))
			gc_remove(g, kind, dir, v[i]);
		free(p);
	}
	gc_free_entries(v, n);
	free(dir);
}

/* The caches of each slurm executor's SHARED_DIR/<instance> (docs/slurm-executor.md): made by
 * eph pack on this machine (archives, wheels) and by the agents on the nodes (sources, venvs),
 * all kept by recency, as the wheels here are. */
static void
gc_shared(struct gc *g, const struct conf *c)
{
	char id[INSTANCE_ID_LEN + 1];
	struct diag d;
	int rc;

	diag_init(&d);
	rc = instance_read(g->state, id, &d);
	diag_free(&d);
	if (rc < 0)
		return; /* no instance yet: nothing was ever submitted */
	for (size_t i = 0; i < c->nexecutors; i++) {
		const struct conf_slurm *set = c->executors[i].type == CONF_EXEC_SLURM
		                                       ? conf_executor_slurm(&c->executors[i])
		                                       : NULL;
		char *base;
		json_t *keep;

		if (set == NULL || set->shared_dir == NULL)
			continue;
		base = xasprintf("%s/%s", set->shared_dir, id);
		keep = gc_shared_named(base);
		gc_shared_sub(g, base, keep, "archive", ARCHIVE_DIR, ARCHIVE_SUFFIX);
		gc_shared_sub(g, base, keep, "sources", "sources", "");
		gc_shared_sub(g, base, keep, "wheels", WHEELS_DIR, "");
		gc_shared_sub(g, base, keep, "venv", "venvs", "");
		json_decref(keep);
		free(base);
	}
}

/* Prints what was freed (and, with --json, everything removed and kept). */
static void
gc_report(struct gc *g)
{
	char size[32];

	units_format_size(g->freed, size, sizeof(size));
	if (g->json) {
		json_t *o = json_pack("{s:b, s:I, s:s, s:O, s:O}", "dry_run", g->dry_run,
		                      "freed_bytes", (json_int_t)g->freed, "freed", size, "removed",
		                      g->removed, "kept", g->kept);

		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		printf("%s %s\n", g->dry_run ? "would free" : "freed", size);
	}
}

static int
cmd_gc_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct gc g = { 0 };
	int rc;

	if ((rc = gc_options(&g, argc, argv)) >= 0)
		return rc;
	if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
		return rc;
	g.state = cmd_state_dir(ctx);
	g.removed = json_array();
	g.kept = json_array();
	gc_used(&g, ctx->conf);
	gc_all_but_tip(&g, "worktree", "src", ""); /* STATE/src: the worktrees */
	gc_venvs(&g, ctx);
	gc_all_but_tip(&g, "archive", ARCHIVE_DIR, ARCHIVE_SUFFIX); /* STATE/archives */
	gc_wheels(&g);
	gc_mirrors(&g);
	gc_shared(&g, ctx->conf);
	gc_report(&g);
	json_decref(g.removed);
	json_decref(g.kept);
	free(g.keep_commit);
	free(g.keep_mirror);
	free(g.in_place);
	return g.errors > 0 ? EPH_EXIT_FAIL : EPH_EXIT_OK;
}
