/* src/agent/venv.h: the agent's `runtime` phase: one Python venv per (interpreter, its version,
 * requirements file content), built once under STATE/venvs/<key> and shared by every run that
 * needs the same one (docs/rundir.md, "The runtime phase").
 *
 * Cache convention: the one of src/source/source.h (STATE/venvs/<key>.lock: LOCK_SH held by
 * each live run, and by a builder while it builds, LOCK_EX|LOCK_NB to remove, mtime = last
 * use; STATE/venvs/<key>.build: LOCK_EX to build). One difference: a venv cannot be built
 * aside and renamed, because pip writes the venv's absolute path into the shebang of every
 * script it installs (bin/pip, console scripts) and into bin/activate; so it is built in place
 * under the build lock and counts as present only once its marker file VENV_READY is written,
 * last. A failed build is removed at once; a crash's leftover (no marker) is removed by the
 * next build (or by `eph gc`). Readers never use a half-built venv: they need the marker. */
#ifndef EPH_AGENT_VENV_H
#define EPH_AGENT_VENV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

struct diag;

#define VENV_READY   ".eph-ready" /* inside the venv: written last, says it is complete */
#define VENV_KEY_LEN 32           /* hex characters of SHA-256 kept in the key */

/* Receives the build's output (stream 0 = stdout, 1 = stderr), as it comes. */
typedef void (*venv_output_fn)(void *arg, int stream, const void *p, size_t n);

struct venv_opts {
	const char *state_dir;    /* absolute; the venvs live in STATE_DIR/venvs */
	const char *interpreter;  /* a name looked up on PATH_ENV, or a path */
	const char *requirements; /* the requirements file (absolute, or relative to ROOT) */
	const char *root;         /* the source root: pip's working directory */
	char *const *envp;        /* the environment of the interpreter and pip */
	const char *path_env;     /* the PATH the interpreter is looked up on (NULL: none) */
	venv_output_fn out;       /* the build's output (NULL: discarded) */
	void *arg;
	const char *wheels; /* NULL: pip installs from its index (the user's configuration);
	                     * else a directory of wheels with a pip wheel among them
	                     * (source/wheels.h, spec.json's runtime.wheels): the venv is built
	                     * offline, without pip or ensurepip being installed (below) */
	int cancel_fd;      /* -1, or an fd that becomes readable when the run is cancelled */
	int64_t timeout_ms; /* for the whole build (venv + pip); 0 = none */
};

/* A venv held for a run. */
struct venv {
	char *path;           /* STATE/venvs/<key>, owned */
	char *key;            /* VENV_KEY_LEN hex, owned */
	char *interpreter;    /* the interpreter's absolute path, owned */
	int hold_fd;          /* LOCK_SH on PATH.lock, O_CLOEXEC: keep it for the run's life */
	bool built;           /* this call built it; false: it was in the cache */
	bool build_attempted; /* a build was started (its output went to OUT) */
};

/* Looks NAME up: a name with a '/' is taken as it is (relative to the current directory);
 * otherwise the first executable regular file NAME in the ':'-separated PATH_ENV (an empty
 * entry is the current directory). Returns 0 and *OUT (absolute, caller frees), -ENOENT if
 * there is none. */
EPH_MUST_CHECK int venv_find_interpreter(const char *name, const char *path_env, char **out);

/* The venv key: the first VENV_KEY_LEN hex digits of SHA-256 over INTERP_REAL, a NUL, VERSION,
 * a NUL and the N bytes of REQS, then, with WHEELS (not NULL), a NUL, "wheels", a NUL and
 * WHEELS: an offline venv never shares a key with one pip built from its index. OUT gets
 * VENV_KEY_LEN + 1 bytes. */
void venv_key(const char *interp_real, const char *version, const void *reqs, size_t n,
              const char *wheels, char out[VENV_KEY_LEN + 1]);

/* What a venv is made of, and so its key. Owned strings (venv_id_clear). */
struct venv_id {
	char *interp;  /* the interpreter as found on the PATH (absolute) */
	char *version; /* its sys.version */
	char *reqs;    /* the requirements file's path */
	char key[VENV_KEY_LEN + 1];
};

/* Finds O->interpreter, asks it its version and reads O->requirements, to know the key of the
 * venv they make, without building or holding anything (`eph gc` uses it to know which venvs
 * the jobs can use). 0, or a negative value with one message in D, as venv_prepare. */
EPH_MUST_CHECK int venv_identify(const struct venv_opts *o, struct venv_id *id, struct diag *d);
void venv_id_clear(struct venv_id *id); /* NULL is fine */

/* Finds the interpreter, asks it its version (`-c 'import sys; print(sys.version)'`), reads the
 * requirements file, and then holds STATE_DIR/venvs/<key>, building it first if it is not there
 * (INTERPRETER -m venv, then VENV/bin/python -m pip install --disable-pip-version-check -r
 * REQUIREMENTS, with O->envp and ROOT as the working directory; its output to O->out, preceded
 * by an "eph: building venv ..." line). With O->wheels, offline instead: INTERPRETER -m venv
 * --without-pip (the venv module is in Python's standard library; ensurepip, which Debian and
 * Ubuntu ship apart in python3-venv, is never used), then VENV/bin/python WHEELS/PIP.whl/pip
 * install --disable-pip-version-check --no-index --find-links WHEELS -r REQUIREMENTS (pip runs
 * from its wheel: no pip is installed anywhere, not even in the venv); a requirement with no
 * wheel there fails the build, named in the message ("no wheel for requirement \"X\" in
 * WHEELS ..."), as does a WHEELS without a pip wheel. Concurrent callers for one key build it once:
 * the others wait for the build (not for the builder's run), cancellably, and use it. Returns 0 and
 * fills V (venv_release), or a negative value with one message in D: -ENOENT the interpreter is not
 * found, -EIO the interpreter does not run or the build failed (nothing of it is left), -ECANCELED
 * O->cancel_fd fired, -ETIMEDOUT the build outlasted O->timeout_ms, other -errno from the file
 * system. */
EPH_MUST_CHECK int venv_prepare(const struct venv_opts *o, struct venv *v, struct diag *d);
/* Closes the hold and frees V's members; NULL is fine. */
void venv_release(struct venv *v);

#endif
