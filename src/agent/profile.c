/* src/agent/profile.c: a profiled run (spec.json profile_room > 0, docs/profile.md): the
 * command's Python gets eph's tracemalloc hook through its start-up (a sitecustomize.py first
 * on PYTHONPATH, which runs the one it shadows), and at the end the agent turns the hook's
 * RUN_DIR/profile.json into a "profile" event, or says in an "unprofiled" event why there is
 * none. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent_int.h"
#include "agent/eph_profile_py.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define PROFILE_HOOK_DIR "profile-hook"
#define PROFILE_FILE     "profile.json"
#define PROFILE_TOP      5 /* sites in the event */

/* Replaces or adds NAME=VALUE in ENV (K entries, room for one more); returns the new K. */
static size_t
env_put(char **env, size_t k, const char *name, char *kv)
{
	size_t l = strlen(name);

	for (size_t i = 0; i < k; i++)
		if (strncmp(env[i], name, l) == 0 && env[i][l] == '=') {
			free(env[i]);
			env[i] = kv;
			return k;
		}
	env[k++] = kv;
	return k;
}

size_t
agent_profile_env(const struct agent *a, char **env, size_t k)
{
	char *dir, *hook, *file, *old = NULL;
	size_t l = strlen("PYTHONPATH");
	int rc;

	if (a->spec.profile_room == 0)
		return k;
	dir = realpath(a->dir, NULL);
	if (dir == NULL)
		return k; /* the end says the run went unprofiled */
	hook = xasprintf("%s/" PROFILE_HOOK_DIR, dir);
	file = xasprintf("%s/sitecustomize.py", hook);
	if ((mkdir(hook, 0700) < 0 && errno != EEXIST) ||
	    (rc = fsio_write_atomic(file, eph_profile_py, strlen(eph_profile_py), 0600,
	                            FSIO_NOSYNC)) < 0) {
		free(file);
		free(hook);
		free(dir);
		return k;
	}
	for (size_t i = 0; i < k; i++)
		if (strncmp(env[i], "PYTHONPATH=", l + 1) == 0 && env[i][l + 1] != '\0')
			old = env[i] + l + 1;
	k = env_put(env, k, "PYTHONPATH",
	            old != NULL ? xasprintf("PYTHONPATH=%s:%s", hook, old)
	                        : xasprintf("PYTHONPATH=%s", hook));
	k = env_put(env, k, "EPH_PROFILE_DIR", xasprintf("EPH_PROFILE_DIR=%s", dir));
	/* for the .pth of the venvs eph builds, which runs even without PYTHONPATH (-E) */
	k = env_put(env, k, "EPH_PROFILE_HOOK", xasprintf("EPH_PROFILE_HOOK=%s", file));
	free(file);
	free(hook);
	free(dir);
	return k;
}

/* FILE as a person reads it: relative to CWD when under it. */
static const char *
site_file(const char *file, const char *cwd)
{
	size_t l = cwd != NULL ? strlen(cwd) : 0;

	if (l > 0 && strncmp(file, cwd, l) == 0 && file[l] == '/')
		return file + l + 1;
	return file;
}

void
agent_profile_end(struct agent *a, struct rundir_result *r)
{
	char *path;
	json_t *doc, *sites, *f, *out;
	json_error_t err;
	const char *cwd;
	uint64_t prof, traced;
	size_t i;

	if (a->spec.profile_room == 0)
		return;
	if (a->spec.memory > a->spec.profile_room)
		r->memory_limit =
		        a->spec.memory - a->spec.profile_room; /* the limit it was given */
	path = xasprintf("%s/" PROFILE_FILE, a->dir);
	doc = json_load_file(path, 0, &err);
	free(path);
	if (doc == NULL || !json_is_object(doc)) {
		f = json_object();
		json_object_set_new(f, "reason",
		                    json_string("no Python of the command started eph's hook (not "
		                                "Python, or Python run with -S, or with -I or -E "
		                                "outside a venv eph built)"));
		(void)rundir_event_append(a->ev_fd, "unprofiled", rundir_now(), f);
		json_decref(f);
		json_decref(doc);
		return;
	}
	prof = (uint64_t)json_integer_value(json_object_get(doc, "profiler_bytes"));
	/* the run's peak without tracemalloc's own records */
	if (prof > 0 && r->peak_bytes > prof)
		r->peak_bytes -= prof;
	traced = (uint64_t)json_integer_value(json_object_get(doc, "traced_bytes"));
	cwd = json_string_value(json_object_get(doc, "cwd"));
	sites = json_object_get(doc, "sites");
	out = json_array();
	for (i = 0; i < json_array_size(sites) && json_array_size(out) < PROFILE_TOP; i++) {
		json_t *s = json_array_get(sites, i), *o;
		const char *file = json_string_value(json_object_get(s, "file"));
		const char *fn = json_string_value(json_object_get(s, "function"));

		if (file == NULL ||
		    (json_array_size(out) > 0 &&
		     (uint64_t)json_integer_value(json_object_get(s, "bytes")) < traced / 100))
			continue; /* under 1% of the traced memory: noise */
		o = json_object();
		json_object_set_new(o, "file", json_string(site_file(file, cwd)));
		json_object_set(o, "line", json_object_get(s, "line"));
		json_object_set_new(o, "function", json_string(fn != NULL ? fn : "?"));
		json_object_set(o, "bytes", json_object_get(s, "bytes"));
		json_array_append_new(out, o);
	}
	f = json_object();
	json_object_set_new(f, "sites", out);
	json_object_set_new(f, "traced_bytes",
	                    json_integer(json_integer_value(json_object_get(doc, "traced_bytes"))));
	json_object_set_new(f, "profiler_bytes", json_integer((json_int_t)prof));
	json_object_set_new(f, "peak_bytes", json_integer((json_int_t)r->peak_bytes));
	(void)rundir_event_append(a->ev_fd, "profile", rundir_now(), f);
	json_decref(f);
	json_decref(doc);
}
