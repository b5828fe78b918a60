/* src/rundir/rundir.c: spec.json, agent.pid, events.jsonl and result.json I/O. */
#include "rundir/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

/* Reals are written with 13 significant digits: ms precision for epoch times, and no
 * "0.10000000000000001" noise. */
#define RUNDIR_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(13))

static const char *const outcome_names[] = {
	[RUNDIR_SUCCEEDED] = "succeeded",
	[RUNDIR_FAILED] = "failed",
	[RUNDIR_OOM] = "oom",
	[RUNDIR_TIMEOUT] = "timeout",
	[RUNDIR_KILLED] = "killed",
	[RUNDIR_CANCELLED] = "cancelled",
};

const char *
rundir_outcome_name(enum rundir_outcome o)
{
	if ((size_t)o >= EPH_ARRAY_LEN(outcome_names))
		return "failed";
	return outcome_names[o];
}

int
rundir_outcome_parse(const char *name, enum rundir_outcome *o)
{
	for (size_t i = 0; i < EPH_ARRAY_LEN(outcome_names); i++)
		if (strcmp(name, outcome_names[i]) == 0) {
			*o = (enum rundir_outcome)i;
			return 0;
		}
	return -EINVAL;
}

double
rundir_now(void)
{
	return clock_real();
}

int
rundir_iso8601(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (n > 0)
		out[0] = '\0';
	if (t < 0 || t > RUNDIR_TIME_MAX || gmtime_r(&tt, &tm) == NULL)
		return -ERANGE;
	if (strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		if (n > 0)
			out[0] = '\0';
		return -ERANGE;
	}
	return 0;
}

/* Reads DIR/FILE (a JSON file, at most BUF_MAX_JSON bytes) into B, which it initialises;
 * *NAME is its path (caller frees both). A file too large is reported into D as -EINVAL;
 * another failure is returned as -errno, and reported only with REPORT. */
static int
read_json(const char *dir, const char *file, bool report, struct buf *b, char **name,
          struct diag *d)
{
	int rc;

	*name = xasprintf("%s/%s", dir, file);
	buf_init(b, BUF_MAX_JSON);
	rc = fsio_read_file(*name, b);
	if (rc == -E2BIG) {
		diag_error(d, (struct diag_pos){ *name, 0, 0 }, "larger than %u bytes",
		           BUF_MAX_JSON);
		rc = -EINVAL;
	} else if (rc < 0 && report) {
		diag_error(d, (struct diag_pos){ *name, 0, 0 }, "%s", strerror(-rc));
	}
	return rc;
}

/* Writes TEXT to DIR/NAME atomically (fsio_write_atomic); without DURABLE, no fsync: readers
 * never see a partial file, but a machine crash may lose it. */
static int
write_atomic(const char *dir, const char *name, const char *text, bool durable)
{
	char *path = xasprintf("%s/%s", dir, name);
	int rc = fsio_write_atomic(path, text, strlen(text), 0644, durable ? 0 : FSIO_NOSYNC);

	free(path);
	return rc;
}

static int
write_json(const char *dir, const char *name, const json_t *obj)
{
	char *text = json_dumps(obj, RUNDIR_JSON_FLAGS | JSON_INDENT(2));
	struct buf b;
	int rc;

	if (text == NULL)
		return -ENOMEM;
	buf_init(&b, BUF_MAX_UNLIMITED);
	rc = buf_puts(&b, text);
	if (rc == 0)
		rc = buf_putc(&b, '\n');
	if (rc == 0)
		rc = write_atomic(dir, name, buf_cstr(&b), true);
	buf_free(&b);
	free(text);
	return rc;
}

/* ---- reading helpers: each reports into D at the document's position */

struct jrd {
	const char *name;
	struct diag *d;
	const json_t *root;
};

static void
jerr(struct jrd *r, const char *key, const char *what)
{
	diag_error(r->d, (struct diag_pos){ r->name, 0, 0 }, "\"%s\": %s", key, what);
}

static json_t *
jget(struct jrd *r, const char *key, bool required)
{
	json_t *v = json_object_get(r->root, key);

	if (v == NULL && required)
		jerr(r, key, "missing");
	return v;
}

static char *
jstr(struct jrd *r, const char *key, bool required)
{
	json_t *v = jget(r, key, required);

	if (v == NULL || json_is_null(v)) {
		if (v != NULL && required)
			jerr(r, key, "must be a string");
		return NULL;
	}
	if (!json_is_string(v)) {
		jerr(r, key, "must be a string");
		return NULL;
	}
	return xstrndup(json_string_value(v), json_string_length(v));
}

static int64_t
jint(struct jrd *r, const char *key, bool required, int64_t min, int64_t max, int64_t dflt)
{
	json_t *v = jget(r, key, required);

	if (v == NULL || (json_is_null(v) && !required))
		return dflt;
	if (!json_is_integer(v)) {
		jerr(r, key, "must be an integer");
		return dflt;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		jerr(r, key, "out of range");
		return dflt;
	}
	return json_integer_value(v);
}

static double
jreal(struct jrd *r, const char *key, double dflt)
{
	json_t *v = jget(r, key, false);

	if (v == NULL || json_is_null(v))
		return dflt;
	if (!json_is_number(v)) {
		jerr(r, key, "must be a number");
		return dflt;
	}
	return json_number_value(v);
}

/* Whether X may stand for a time in the run directory's files: an instant (UTC seconds) or a
 * duration (seconds), finite, within 0..RUNDIR_TIME_MAX. */
static bool
time_ok(double x)
{
	return isfinite(x) && x >= 0 && x <= (double)RUNDIR_TIME_MAX;
}

/* A time (time_ok) at KEY, a number; DFLT if absent or null. */
static double
jtime(struct jrd *r, const char *key, double dflt)
{
	double x = jreal(r, key, dflt);

	if (!time_ok(x)) {
		jerr(r, key, "out of range (0 to 253402300799, the end of year 9999)");
		return dflt;
	}
	return x;
}

static json_t *
parse_root(const char *text, size_t len, const char *name, struct diag *d)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

	if (root == NULL) {
		diag_error(d,
		           (struct diag_pos){ name, je.line > 0 ? je.line : 0,
		                              je.column > 0 ? je.column : 0 },
		           "%s", je.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		diag_error(d, (struct diag_pos){ name, 1, 1 }, "not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

/* ---- spec.json */

/* A relative path that stays inside its root: not absolute, no ".." component. */
static bool
path_stays_inside(const char *p)
{
	const char *c = p;

	if (*p == '/')
		return false;
	while (*c != '\0') {
		size_t n = strcspn(c, "/");

		if (n == 2 && c[0] == '.' && c[1] == '.')
			return false;
		c += n;
		if (*c == '/')
			c++;
	}
	return true;
}

/* "source", "runtime", "state_dir", "workdir" (docs/rundir.md, "spec.json: source and
 * runtime"). */
static void
spec_parse_prep(struct jrd *r, struct rundir_spec *s)
{
	json_t *v;

	s->state_dir = jstr(r, "state_dir", false);
	if (s->state_dir != NULL && s->state_dir[0] != '/')
		jerr(r, "state_dir", "must be an absolute path");
	s->workdir = jstr(r, "workdir", false);
	if (s->workdir != NULL && !path_stays_inside(s->workdir))
		jerr(r, "workdir", "must be a relative path that stays inside the source root");
	v = json_object_get(r->root, "source");
	if (v != NULL && !json_is_null(v)) {
		struct jrd sub = { .name = r->name, .d = r->d, .root = v };

		if (!json_is_object(v)) {
			jerr(r, "source", "must be an object or null");
		} else {
			/* exactly one of "mirror" and (from version 2) "archive" */
			bool v2 = s->version >= 2;

			s->source.mirror = jstr(&sub, "mirror", !v2);
			s->source.archive = v2 ? jstr(&sub, "archive", false) : NULL;
			if (v2 && (s->source.mirror == NULL) == (s->source.archive == NULL))
				jerr(r, "source",
				     "exactly one of \"mirror\" and \"archive\" must be given");
			s->source.commit = jstr(&sub, "commit", true);
			s->source.repo = jstr(&sub, "repo", false);
			s->source.branch = jstr(&sub, "branch", false);
			s->source.keep_worktrees =
			        (int)jint(&sub, "keep_worktrees", false, 0, 1000000, 5);
			if (s->source.mirror != NULL && s->source.mirror[0] != '/')
				jerr(r, "source", "\"mirror\" must be an absolute path");
			if (s->source.archive != NULL && s->source.archive[0] != '/')
				jerr(r, "source", "\"archive\" must be an absolute path");
			if (s->state_dir == NULL)
				jerr(r, "state_dir", "required with \"source\"");
		}
	}
	v = json_object_get(r->root, "runtime");
	if (v != NULL && !json_is_null(v)) {
		struct jrd sub = { .name = r->name, .d = r->d, .root = v };

		if (!json_is_object(v)) {
			jerr(r, "runtime", "must be an object or null");
		} else {
			s->runtime.requirements = jstr(&sub, "requirements", true);
			s->runtime.interpreter = jstr(&sub, "interpreter", false);
			if (s->runtime.interpreter == NULL)
				s->runtime.interpreter = xstrdup("python3");
			else if (s->runtime.interpreter[0] == '\0')
				jerr(r, "runtime", "\"interpreter\" must not be empty");
			if (s->runtime.requirements != NULL && s->runtime.requirements[0] == '\0')
				jerr(r, "runtime", "\"requirements\" must not be empty");
			s->runtime.wheels = jstr(&sub, "wheels", false);
			if (s->runtime.wheels != NULL && s->runtime.wheels[0] != '/')
				jerr(r, "runtime", "\"wheels\" must be an absolute path");
			if (s->state_dir == NULL)
				jerr(r, "state_dir", "required with \"runtime\"");
		}
	}
}

void
rundir_spec_free(struct rundir_spec *s)
{
	if (s == NULL)
		return;
	free(s->job);
	free(s->trigger);
	if (s->argv != NULL)
		for (char **a = s->argv; *a != NULL; a++)
			free(*a);
	free(s->argv);
	free(s->shell);
	for (size_t i = 0; i < s->nenv; i++) {
		free(s->env[i].name);
		free(s->env[i].value);
	}
	free(s->env);
	free(s->cwd);
	free(s->commit);
	free(s->state_dir);
	free(s->source.mirror);
	free(s->source.archive);
	free(s->source.commit);
	free(s->source.repo);
	free(s->source.branch);
	free(s->runtime.interpreter);
	free(s->runtime.requirements);
	free(s->runtime.wheels);
	free(s->workdir);
	for (size_t i = 0; i < s->nsecrets; i++)
		free(s->secrets[i]);
	free(s->secrets);
	for (size_t i = 0; i < s->nresults; i++)
		free(s->results[i]);
	free(s->results);
	memset(s, 0, sizeof(*s));
}

/* (version 3) "secrets": the names of the variables whose values come on stdin. */
static void
spec_parse_secrets(struct jrd *r, struct rundir_spec *s)
{
	json_t *v = json_object_get(r->root, "secrets");
	size_t n;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_array(v)) {
		jerr(r, "secrets", "must be an array of names");
		return;
	}
	n = json_array_size(v);
	s->secrets = xcalloc(n + 1, sizeof(*s->secrets));
	for (size_t i = 0; i < n; i++) {
		json_t *a = json_array_get(v, i);
		const char *k = json_is_string(a) ? json_string_value(a) : NULL;

		if (k == NULL || *k == '\0' || strchr(k, '=') != NULL) {
			jerr(r, "secrets", "must be an array of names (without '=')");
			return;
		}
		s->secrets[s->nsecrets++] = xstrdup(k);
	}
}

/* "results": the globs of files to collect (absent in the specs of before). */
static void
spec_parse_results(struct jrd *r, struct rundir_spec *s)
{
	json_t *v = json_object_get(r->root, "results");
	size_t n;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_array(v)) {
		jerr(r, "results", "must be an array of globs");
		return;
	}
	n = json_array_size(v);
	s->results = xcalloc(n + 1, sizeof(*s->results));
	for (size_t i = 0; i < n; i++) {
		json_t *a = json_array_get(v, i);
		const char *g = json_is_string(a) ? json_string_value(a) : NULL;

		if (g == NULL || *g == '\0' || *g == '/') {
			jerr(r, "results", "must be an array of relative globs");
			return;
		}
		s->results[s->nresults++] = xstrdup(g);
	}
}

int
rundir_spec_parse(const char *text, size_t len, const char *name, struct rundir_spec *s,
                  struct diag *d)
{
	struct jrd r = { .name = name, .d = d };
	size_t before = diag_nerrors(d);
	json_t *root, *v;
	char *enforce;

	memset(s, 0, sizeof(*s));
	if ((root = parse_root(text, len, name, d)) == NULL)
		return -EINVAL;
	r.root = root;
	s->version = (int)jint(&r, "version", true, 1, INT32_MAX, RUNDIR_VERSION);
	if (s->version > RUNDIR_VERSION) {
		/* its other fields may mean what this agent cannot know: none is read */
		diag_error(d, (struct diag_pos){ name, 0, 0 },
		           "spec.json version %d is newer than this agent (%d)", s->version,
		           RUNDIR_VERSION);
		json_decref(root);
		memset(s, 0, sizeof(*s));
		return -EINVAL;
	}
	s->run_id = jint(&r, "run_id", true, 0, INT64_MAX, 0);
	s->job = jstr(&r, "job", true);
	s->attempt = (int)jint(&r, "attempt", false, 0, INT32_MAX, 1);
	s->trigger = jstr(&r, "trigger", false);
	s->scheduled_at = jint(&r, "scheduled_at", false, 0, RUNDIR_TIME_MAX, 0);
	s->not_before = jtime(&r, "not_before", 0);
	if (s->version >= 2) {
		s->clock_offset = jreal(&r, "clock_offset", 0);
		if (!isfinite(s->clock_offset) || fabs(s->clock_offset) > (double)RUNDIR_TIME_MAX) {
			jerr(&r, "clock_offset", "out of range");
			s->clock_offset = 0;
		}
	}
	s->shell = jstr(&r, "shell", false);
	v = json_object_get(root, "argv");
	if (v != NULL && !json_is_null(v)) {
		size_t i, n;

		if (!json_is_array(v) || json_array_size(v) == 0) {
			jerr(&r, "argv", "must be a non-empty array of strings");
		} else {
			n = json_array_size(v);
			s->argv = xcalloc(n + 1, sizeof(char *));
			for (i = 0; i < n; i++) {
				json_t *a = json_array_get(v, i);

				if (!json_is_string(a)) {
					jerr(&r, "argv", "must be a non-empty array of strings");
					break;
				}
				s->argv[i] = xstrdup(json_string_value(a));
			}
		}
	}
	if ((s->argv == NULL) == (s->shell == NULL))
		diag_error(d, (struct diag_pos){ name, 0, 0 },
		           "exactly one of \"argv\" and \"shell\" must be given");
	v = json_object_get(root, "env");
	if (v != NULL && !json_is_null(v)) {
		const char *k;
		json_t *val;

		if (!json_is_object(v)) {
			jerr(&r, "env", "must be an object of strings");
		} else {
			s->env = xcalloc(json_object_size(v) + 1, sizeof(*s->env));
			json_object_foreach(v, k, val)
			{
				if (!json_is_string(val) || *k == '\0' || strchr(k, '=') != NULL) {
					jerr(&r, "env", "must map names (without '=') to strings");
					continue;
				}
				s->env[s->nenv].name = xstrdup(k);
				s->env[s->nenv].value = xstrdup(json_string_value(val));
				s->nenv++;
			}
		}
	}
	s->cwd = jstr(&r, "cwd", false);
	s->memory = (uint64_t)jint(&r, "memory", false, 0, INT64_MAX, 0);
	s->timeout = jint(&r, "timeout", false, 0, INT64_MAX / 1000, 0);
	s->kill_grace = jint(&r, "kill_grace", false, 0, INT64_MAX / 1000, 10);
	s->results_max = (uint64_t)jint(&r, "results_max", false, 0, INT64_MAX, INT64_C(1) << 30);
	s->profile_room = (uint64_t)jint(&r, "profile_room", false, 0, INT64_MAX, 0);
	s->commit = jstr(&r, "commit", false);
	enforce = jstr(&r, "enforce", false);
	if (enforce != NULL && strcmp(enforce, "sampled") == 0)
		s->enforce = RUNDIR_ENFORCE_SAMPLED;
	else if (enforce != NULL && strcmp(enforce, "auto") != 0)
		jerr(&r, "enforce", "must be \"auto\" or \"sampled\"");
	free(enforce);
	spec_parse_prep(&r, s);
	if (s->version >= 3)
		spec_parse_secrets(&r, s);
	spec_parse_results(&r, s);
	json_decref(root);
	if (diag_nerrors(d) > before) {
		rundir_spec_free(s);
		return -EINVAL;
	}
	return 0;
}

int
rundir_spec_read(const char *dir, struct rundir_spec *s, struct diag *d)
{
	struct buf b;
	char *name;
	int rc;

	memset(s, 0, sizeof(*s));
	rc = read_json(dir, RUNDIR_SPEC, true, &b, &name, d);
	if (rc == 0)
		rc = rundir_spec_parse(b.data != NULL ? b.data : "", b.len, name, s, d);
	buf_free(&b);
	free(name);
	return rc;
}

static json_t *
jstr_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static double ms(double x);

/* The lowest spec.json version that holds everything S says (rundir.h). */
static int
spec_version_needed(const struct rundir_spec *s)
{
	if (s->nsecrets > 0)
		return 3;
	return s->source.archive != NULL || s->clock_offset != 0 ? 2 : 1;
}

int
rundir_spec_write(const char *dir, const struct rundir_spec *s)
{
	json_t *o = json_object(), *env = json_object();
	int rc;

	json_object_set_new(o, "version", json_integer(spec_version_needed(s)));
	json_object_set_new(o, "run_id", json_integer(s->run_id));
	json_object_set_new(o, "job", jstr_or_null(s->job));
	json_object_set_new(o, "attempt", json_integer(s->attempt));
	json_object_set_new(o, "trigger", jstr_or_null(s->trigger));
	json_object_set_new(o, "scheduled_at", json_integer(s->scheduled_at));
	if (s->not_before > 0)
		json_object_set_new(o, "not_before", json_real(ms(s->not_before)));
	if (s->clock_offset != 0) /* absent otherwise: a version-1 spec */
		json_object_set_new(o, "clock_offset", json_real(ms(s->clock_offset)));
	if (s->argv != NULL) {
		json_t *a = json_array();

		for (char **p = s->argv; *p != NULL; p++)
			json_array_append_new(a, json_string(*p));
		json_object_set_new(o, "argv", a);
	} else {
		json_object_set_new(o, "argv", json_null());
	}
	json_object_set_new(o, "shell", jstr_or_null(s->shell));
	for (size_t i = 0; i < s->nenv; i++)
		json_object_set_new(env, s->env[i].name, json_string(s->env[i].value));
	json_object_set_new(o, "env", env);
	json_object_set_new(o, "cwd", jstr_or_null(s->cwd));
	json_object_set_new(o, "memory", json_integer((json_int_t)s->memory));
	json_object_set_new(o, "timeout", json_integer(s->timeout));
	json_object_set_new(o, "kill_grace", json_integer(s->kill_grace));
	json_object_set_new(o, "results_max", json_integer((json_int_t)s->results_max));
	if (s->profile_room > 0)
		json_object_set_new(o, "profile_room", json_integer((json_int_t)s->profile_room));
	json_object_set_new(o, "commit", jstr_or_null(s->commit));
	json_object_set_new(o, "enforce",
	                    json_string(s->enforce == RUNDIR_ENFORCE_SAMPLED ? "sampled" : "auto"));
	json_object_set_new(o, "state_dir", jstr_or_null(s->state_dir));
	if (s->source.mirror != NULL || s->source.archive != NULL) {
		json_t *so = json_object();

		if (s->source.mirror != NULL)
			json_object_set_new(so, "mirror", json_string(s->source.mirror));
		if (s->source.archive != NULL)
			json_object_set_new(so, "archive", json_string(s->source.archive));
		json_object_set_new(so, "commit", jstr_or_null(s->source.commit));
		json_object_set_new(so, "repo", jstr_or_null(s->source.repo));
		json_object_set_new(so, "branch", jstr_or_null(s->source.branch));
		json_object_set_new(so, "keep_worktrees", json_integer(s->source.keep_worktrees));
		json_object_set_new(o, "source", so);
	} else {
		json_object_set_new(o, "source", json_null());
	}
	json_object_set_new(o, "workdir", jstr_or_null(s->workdir));
	if (s->nsecrets > 0) { /* absent otherwise: the spec of before */
		json_t *a = json_array();

		for (size_t i = 0; i < s->nsecrets; i++)
			json_array_append_new(a, json_string(s->secrets[i]));
		json_object_set_new(o, "secrets", a);
	}
	if (s->nresults > 0) { /* absent otherwise: the spec of before */
		json_t *a = json_array();

		for (size_t i = 0; i < s->nresults; i++)
			json_array_append_new(a, json_string(s->results[i]));
		json_object_set_new(o, "results", a);
	}
	if (s->runtime.requirements != NULL) {
		json_t *ro = json_object();

		json_object_set_new(ro, "interpreter",
		                    json_string(s->runtime.interpreter != NULL
		                                        ? s->runtime.interpreter
		                                        : "python3"));
		json_object_set_new(ro, "requirements", json_string(s->runtime.requirements));
		if (s->runtime.wheels != NULL) /* absent otherwise: the spec of before */
			json_object_set_new(ro, "wheels", json_string(s->runtime.wheels));
		json_object_set_new(o, "runtime", ro);
	} else {
		json_object_set_new(o, "runtime", json_null());
	}
	rc = write_json(dir, RUNDIR_SPEC, o);
	json_decref(o);
	return rc;
}

/* ---- result.json */

void
rundir_result_free(struct rundir_result *r)
{
	if (r == NULL)
		return;
	free(r->reason);
	free(r->peak_method);
	free(r->enforced);
	memset(r, 0, sizeof(*r));
}

static double
ms(double x)
{
	return round(x * 1000.0) / 1000.0;
}

int
rundir_result_write(const char *dir, const struct rundir_result *r)
{
	json_t *o = json_object(), *ph = json_object();
	int rc;

	json_object_set_new(o, "version", json_integer(RUNDIR_RESULT_VERSION));
	json_object_set_new(o, "outcome", json_string(rundir_outcome_name(r->outcome)));
	json_object_set_new(o, "reason", jstr_or_null(r->reason));
	json_object_set_new(o, "failure", jstr_or_null(rundir_failure_name(r->failure)));
	json_object_set_new(o, "exit_code",
	                    r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
	json_object_set_new(o, "signal", r->signal > 0 ? json_integer(r->signal) : json_null());
	json_object_set_new(o, "signal_name",
	                    r->signal > 0 && sigabbrev_np(r->signal) != NULL
	                            ? json_sprintf("SIG%s", sigabbrev_np(r->signal))
	                            : json_null());
	json_object_set_new(o, "memory_limit", json_integer((json_int_t)r->memory_limit));
	json_object_set_new(o, "peak_bytes", json_integer((json_int_t)r->peak_bytes));
	json_object_set_new(o, "peak_method", jstr_or_null(r->peak_method));
	json_object_set_new(o, "maxrss_bytes", json_integer((json_int_t)r->maxrss_bytes));
	json_object_set_new(o, "enforced", jstr_or_null(r->enforced));
	json_object_set_new(o, "started_at", json_real(ms(r->started_at)));
	json_object_set_new(o, "ended_at", json_real(ms(r->ended_at)));
	/* durations are never negative, even when the real-time clock stepped back */
	json_object_set_new(o, "wall_seconds", json_real(ms(fmax(r->wall_seconds, 0))));
	json_object_set_new(o, "cpu_user_seconds", json_real(ms(fmax(r->cpu_user_seconds, 0))));
	json_object_set_new(o, "cpu_system_seconds", json_real(ms(fmax(r->cpu_system_seconds, 0))));
	if (r->source_seconds >= 0)
		json_object_set_new(ph, "source", json_real(ms(r->source_seconds)));
	if (r->runtime_seconds >= 0)
		json_object_set_new(ph, "runtime", json_real(ms(r->runtime_seconds)));
	if (r->exec_seconds >= 0)
		json_object_set_new(ph, "exec", json_real(ms(r->exec_seconds)));
	json_object_set_new(o, "phases", ph);
	rc = write_json(dir, RUNDIR_RESULT, o);
	json_decref(o);
	return rc;
}

int
rundir_result_parse(const char *text, size_t len, const char *name, struct rundir_result *r,
                    struct diag *d)
{
	struct jrd j = { .name = name, .d = d };
	size_t before = diag_nerrors(d);
	json_t *root, *ph;
	char *outcome, *failure;
	bool newer;

	memset(r, 0, sizeof(*r));
	if ((root = parse_root(text, len, name, d)) == NULL)
		return -EINVAL;
	j.root = root;
	/* any version: what a newer agent writes is read as far as it is understood */
	r->version = (int)jint(&j, "version", true, 1, INT32_MAX, RUNDIR_RESULT_VERSION);
	newer = r->version > RUNDIR_RESULT_VERSION;
	outcome = jstr(&j, "outcome", true);
	/* a newer agent's outcome or failure we do not know: the run failed, for the reason
	 * its "reason" says; in a file of our own version, it is an error */
	if (outcome != NULL && rundir_outcome_parse(outcome, &r->outcome) < 0) {
		if (newer)
			r->outcome = RUNDIR_FAILED;
		else
			jerr(&j, "outcome", "unknown outcome");
	}
	free(outcome);
	r->reason = jstr(&j, "reason", false);
	failure = jstr(&j, "failure", false);
	if (failure != NULL && rundir_failure_parse(failure, &r->failure) < 0 && !newer)
		jerr(&j, "failure", "unknown failure");
	free(failure);
	r->exit_code = (int)jint(&j, "exit_code", false, 0, 255, -1);
	r->signal = (int)jint(&j, "signal", false, 0, 128, 0);
	r->memory_limit = (uint64_t)jint(&j, "memory_limit", false, 0, INT64_MAX, 0);
	r->peak_bytes = (uint64_t)jint(&j, "peak_bytes", false, 0, INT64_MAX, 0);
	r->peak_method = jstr(&j, "peak_method", false);
	r->maxrss_bytes = (uint64_t)jint(&j, "maxrss_bytes", false, 0, INT64_MAX, 0);
	r->enforced = jstr(&j, "enforced", false);
	r->started_at = jtime(&j, "started_at", 0);
	r->ended_at = jtime(&j, "ended_at", 0);
	r->wall_seconds = jtime(&j, "wall_seconds", 0);
	r->cpu_user_seconds = jtime(&j, "cpu_user_seconds", 0);
	r->cpu_system_seconds = jtime(&j, "cpu_system_seconds", 0);
	r->exec_seconds = r->source_seconds = r->runtime_seconds = -1;
	ph = json_object_get(root, "phases");
	if (ph != NULL && json_is_object(ph)) {
		static const char *const names[] = { "source", "runtime", "exec" };
		double *dst[] = { &r->source_seconds, &r->runtime_seconds, &r->exec_seconds };

		struct jrd pj = { .name = name, .d = d, .root = ph };

		/* a phase that did not run is absent (or, as before, not a number) */
		for (size_t i = 0; i < EPH_ARRAY_LEN(names); i++)
			if (json_is_number(json_object_get(ph, names[i])))
				*dst[i] = jtime(&pj, names[i], -1);
	}
	json_decref(root);
	if (diag_nerrors(d) > before) {
		rundir_result_free(r);
		return -EINVAL;
	}
	return 0;
}

int
rundir_result_read(const char *dir, struct rundir_result *r, struct diag *d)
{
	struct buf b;
	char *name;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = read_json(dir, RUNDIR_RESULT, false, &b, &name, d);
	if (rc == 0)
		rc = rundir_result_parse(b.data != NULL ? b.data : "", b.len, name, r, d);
	buf_free(&b);
	free(name);
	return rc;
}

/* ---- agent.pid */

int
rundir_proc_starttime(pid_t pid, uint64_t *starttime)
{
	char path[64], data[1024];
	const char *p;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ESRCH;
	data[n] = '\0';
	/* comm (field 2) may hold spaces and parentheses: fields restart after the last ')' */
	p = strrchr(data, ')');
	if (p == NULL)
		return -EINVAL;
	p++;
	while (*p == ' ')
		p++;
	if (*p == 'Z' || *p == 'X')
		return -ESRCH; /* a zombie has ended: only its parent has not collected it yet */
	for (field = 3; field < 22 && *p != '\0'; field++) {
		while (*p == ' ')
			p++;
		while (*p != ' ' && *p != '\0')
			p++;
	}
	if (field != 22)
		return -EINVAL;
	*starttime = strtoull(p, NULL, 10);
	return 0;
}

int
rundir_pid_write(const char *dir, pid_t pid)
{
	uint64_t st = 0;
	char *text;
	int rc;

	if ((rc = rundir_proc_starttime(pid, &st)) < 0)
		return rc;
	text = xasprintf("%d %" PRIu64 "\n", (int)pid, st);
	/* not fsynced: after a machine crash the agent is gone anyway, and the pid means
	 * nothing; this keeps 7 ms off the start of every run */
	rc = write_atomic(dir, RUNDIR_PID, text, false);
	free(text);
	return rc;
}

int
rundir_pid_read(const char *dir, pid_t *pid, uint64_t *starttime)
{
	char *path = xasprintf("%s/%s", dir, RUNDIR_PID);
	struct buf b;
	int rc, p;
	unsigned long long st;
	char nl;

	buf_init(&b, 256);
	rc = fsio_read_file(path, &b);
	free(path);
	if (rc == 0) {
		if (b.len == 0 || sscanf(buf_cstr(&b), "%d %llu%c", &p, &st, &nl) != 3 ||
		    nl != '\n' || p <= 0) {
			rc = -EINVAL;
		} else {
			*pid = (pid_t)p;
			*starttime = st;
		}
	} else if (rc == -E2BIG) {
		rc = -EINVAL;
	}
	buf_free(&b);
	return rc;
}

bool
rundir_pid_alive(pid_t pid, uint64_t starttime)
{
	uint64_t st;

	return rundir_proc_starttime(pid, &st) == 0 && st == starttime;
}

/* ---- events.jsonl */

int
rundir_event_append(int fd, const char *ev, double t, const json_t *fields)
{
	json_t *o = json_object();
	const char *k;
	json_t *v;
	char *line;
	size_t n;
	int rc;

	json_object_set_new(o, "ev", json_string(ev));
	json_object_set_new(o, "t", json_real(ms(t)));
	if (fields != NULL)
		json_object_foreach((json_t *)fields, k, v) json_object_set(o, k, v);
	line = json_dumps(o, RUNDIR_JSON_FLAGS);
	json_decref(o);
	if (line == NULL)
		return -ENOMEM;
	n = strlen(line);
	line = xrealloc(line, n + 2);
	line[n] = '\n';
	line[n + 1] = '\0';
	/* one write(2) of a whole line with O_APPEND: a reader never sees half a line from us
	 * except while it is being written, and then without its newline */
	rc = fsio_write_all(fd, line, n + 1);
	free(line);
	return rc;
}

static int
event_line(const char *p, size_t n, rundir_event_fn fn, void *arg, size_t *skipped)
{
	struct rundir_event e = { 0 };
	json_t *o, *v;
	int rc;

	o = json_loadb(p, n, 0, NULL);
	if (o == NULL || !json_is_object(o) || !json_is_string(json_object_get(o, "ev")) ||
	    !json_is_number(json_object_get(o, "t"))) {
		json_decref(o);
		if (skipped != NULL)
			(*skipped)++;
		return 0;
	}
	e.obj = o;
	e.ev = json_string_value(json_object_get(o, "ev"));
	e.t = json_number_value(json_object_get(o, "t"));
	if ((v = json_object_get(o, "bytes")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) >= 0)
		e.bytes = (uint64_t)json_integer_value(v);
	if ((v = json_object_get(o, "phase")) != NULL && json_is_string(v))
		e.phase = json_string_value(v);
	if ((v = json_object_get(o, "state")) != NULL && json_is_string(v))
		e.state = json_string_value(v);
	if ((v = json_object_get(o, "msg")) != NULL && json_is_string(v))
		e.msg = json_string_value(v);
	rc = fn(&e, arg);
	json_decref(o);
	return rc;
}

int
rundir_events_foreach_mem(const char *data, size_t len, rundir_event_fn fn, void *arg,
                          size_t *consumed, size_t *skipped)
{
	size_t off = 0;
	int rc = 0;

	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t)(nl - (data + off));
		if (n > 0)
			rc = event_line(data + off, n, fn, arg, skipped);
		off += n + 1;
		if (rc != 0)
			break;
	}
	if (consumed != NULL)
		*consumed = off;
	return rc;
}

int
rundir_events_foreach(const char *dir, off_t offset, rundir_event_fn fn, void *arg, off_t *next,
                      size_t *skipped)
{
	char *path = xasprintf("%s/%s", dir, RUNDIR_EVENTS);
	size_t cap = 64 * 1024, len = 0, used;
	char *chunk;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	chunk = xmalloc(cap);
	for (;;) {
		ssize_t n = pread(fd, chunk + len, cap - len, offset + (off_t)len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		rc = rundir_events_foreach_mem(chunk, len, fn, arg, &used, skipped);
		offset += (off_t)used;
		memmove(chunk, chunk + used, len - used);
		len -= used;
		if (rc != 0)
			break;
		if (len == cap) {
			/* one line longer than the buffer: no event is; skip it whole */
			if (cap >= BUF_MAX_JSON) {
				char *nl;

				do {
					n = pread(fd, chunk, cap, offset);
					if (n <= 0)
						break;
					nl = memchr(chunk, '\n', (size_t)n);
					offset += nl != NULL ? (off_t)(nl - chunk + 1) : n;
				} while (nl == NULL);
				len = 0;
				if (skipped != NULL)
					(*skipped)++;
				if (n <= 0)
					break;
				continue;
			}
			cap *= 2;
			chunk = xrealloc(chunk, cap);
		}
	}
	free(chunk);
	close(fd);
	if (next != NULL)
		*next = offset;
	return rc;
}
