/* src/conf/conf_int.h: internal to the conf component: what the files of the loader share.
 * conf.c reads the text, conf_dupkeys.c finds duplicate keys, conf_yaml.c walks the document,
 * conf_value.c reads values, conf_section.c the top level and sections, conf_job.c the jobs. */
#ifndef EPH_CONF_CONF_INT_H
#define EPH_CONF_CONF_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libfyaml.h>

#include "conf/conf.h"
#include "util/attr.h"
#include "util/diag.h"

struct buf;
struct conf_key;
struct conf_section;

#define CONF_JOB_NAME_MAX   64
#define CONF_MAX_JOBS       20000 /* the daemon stays a few MiB at 10,000 (bench/daemon.sh) */
#define CONF_MAX_ENV        256   /* variables of one job */
#define CONF_MAX_EXECUTORS  100   /* named in the executors section, local aside */
#define CONF_MERGE_MAX      16    /* mappings one "<<" merges */
/* The work the file may take once aliases are followed, in bytes: every string copied
 * counts its length, every key or list item read CONF_VISIT_COST more. A guard against
 * "billion laughs" (an alias to a big env mapping, used by every one of many jobs), and
 * what keeps loading linear in the file's size: the budget is CONF_EXPAND_MAX plus
 * CONF_VISIT_COST / 2 for each byte of the file, which a file without aliases never
 * spends (a key or an item takes at least 2 of its bytes). */
#define CONF_EXPAND_MAX     (64u << 20)
#define CONF_VISIT_COST     64
#define CONF_QUOTE_MAX      80   /* bytes of user text quoted in a message */
#define CONF_MAX_ERRORS     100  /* distinct errors reported before the loader stops */
#define CONF_MAX_RAISED     1000 /* errors raised, repeats included, before it stops */
/* Bytes of the canonical forms of keys that are lists or mappings (conf_dup_keys) */
#define CONF_KEYS_CANON_MAX (16u << 20)

/* A job being built: the job, and where its values came from, for later checks. */
struct jobb {
	struct conf_job j;
	struct diag_pos memory_at, email_at, run_at, command_at, executor_at, oom_retry_at;
	struct diag_pos secrets_at; /* where its (or the defaults') "secrets" key stands */
	bool has_schedule, email_from_defaults;
	bool memory_max_written; /* memory's max was written (retry_on_oom: grow needs it) */
};

/* The context of one load: the file, where its errors go, the configuration being built,
 * and what bounds the work. */
struct pctx {
	const char *file;
	struct diag *d;
	struct conf *c;
	size_t expand_max;  /* the budget of work, in bytes */
	size_t expand_left; /* counted down by the work done (conf_charge, conf_visit) */
	size_t canon_left;  /* CONF_KEYS_CANON_MAX, counted down by key_canon */
	/* Errors go through conf_err: each distinct one once (an anchor's errors repeat for every
	 * alias to it), and after too many the walk stops (halted). */
	size_t nraised;              /* errors raised, repeats included */
	char *seen[CONF_MAX_ERRORS]; /* the distinct messages, "LINE:COL: msg" */
	size_t nseen;
	bool halted;       /* too many errors, or the work budget spent: nothing more is walked */
	char **zone_names; /* parallel to c->zones, as the jobs name them */
	/* python section, the first layer of every job's requirements/interpreter */
	char *py_requirements, *py_interpreter;
	bool defaults_email_reported;
	/* executors[i] had errors of its own: the checks of the jobs that depend on its keys
	 * (a job's memory against its hosts) are left out, since its keys may be partial */
	bool exec_bad[CONF_MAX_EXECUTORS + 1];
};

/* Called by conf_map_walk for each key K (KLEN bytes, node KEY) and its value VAL. */
typedef void (*conf_pair_fn)(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                             struct fy_node *val, void *arg);

/* A section whose keys are all generic: source, mail's plain keys, retention, local. */
struct conf_generic_arg {
	const struct conf_section *sec;
	void *base;
	void (*special)(struct pctx *p, const struct conf_key *ck, struct fy_node *key,
	                struct fy_node *v, void *arg);
	void *special_arg;
};

/* The job or defaults being read (conf_job_pair). */
struct conf_job_arg {
	struct jobb *jb;
	bool defaults; /* the defaults section: no schedule, run or command */
};

/* The jobs mapping being read (conf_jobs_pair). */
struct conf_jobs_arg {
	const struct jobb *dflt; /* what every job starts from */
	struct conf_job *jobs;
	size_t n, cap;
	bool too_many;
};

/* ---- conf_yaml.c ---- */

/* The position of node N: libfyaml's marks are 0-based, and this is the one place that
 * converts them. A collection has no token of its own here; its first scalar stands for it
 * (in block style, where the collection starts). {line 0} when N has no position. */
struct diag_pos conf_pos(const struct pctx *p, struct fy_node *n);
/* N's position, else FALLBACK's (an empty collection, a missing value). */
struct diag_pos conf_pos_or(const struct pctx *p, struct fy_node *n, struct diag_pos fallback);
/* S (LEN bytes) quoted for a message: control bytes escaped, long text cut at a character
 * boundary. Caller frees. */
char *conf_quote(const char *s, size_t len);
/* S quoted for a message, without the userinfo of any URL in it (a value echoed in an error
 * must not show a password). Caller frees. */
char *conf_quote_redacted(const char *s);
/* Reports an error at AT: into D the first time, a repeat (same place, same message) only
 * counted. Past CONF_MAX_ERRORS distinct errors or CONF_MAX_RAISED raised ones it says so,
 * once, and halts the walk. Loading stays bounded this way: an alias repeats the errors of
 * what it leads to wherever it is used. */
void conf_err(struct pctx *p, struct diag_pos at, const char *fmt, ...) EPH_PRINTF(3, 4);
/* Errors raised so far, repeats included: what tells whether a part of the file failed. */
size_t conf_nerrors(const struct pctx *p);
/* N with aliases followed; NULL (reported) for an alias that leads nowhere. */
struct fy_node *conf_deref(struct pctx *p, struct fy_node *n);
/* "a mapping", "a list", "a scalar" or "nothing", for messages. */
const char *conf_node_kind(struct fy_node *n);
/* Counts LEN + 1 bytes of work against the budget; false when it is spent (reported once,
 * and the walk halts). */
bool conf_charge(struct pctx *p, size_t len, struct diag_pos at);
/* Counts reading node N, a key or a list item; false when the walk must stop. */
bool conf_visit(struct pctx *p, struct fy_node *n);
/* Calls FN for each key of mapping M, then for each key that M's merge key (<<: *anchor, or
 * a list of them) brings in and that neither M nor an earlier merged mapping has. */
void conf_map_walk(struct pctx *p, struct fy_node *m, conf_pair_fn fn, void *arg);
/* Reports unknown key K of section S, with a suggestion when one is close. */
void conf_unknown_key(struct pctx *p, const struct conf_section *s, struct fy_node *key,
                      const char *k, size_t klen, const char *extra);
/* V (deref'd) when it is a mapping; NULL (reported) otherwise. */
struct fy_node *conf_want_map(struct pctx *p, const char *name, struct fy_node *key,
                              struct fy_node *v);

/* ---- conf_value.c ---- */

/* Whether K (N bytes) is a good name for a job or an executor: 1 to CONF_JOB_NAME_MAX of
 * a-z 0-9 . _ -, starting with a letter or digit. */
bool conf_name_ok(const char *k, size_t n);
/* Whether the path S (what follows its "/" or "~/") is plain: no empty, "." or ".."
 * component. */
bool conf_path_plain(const char *s);
/* Whether S holds only whitespace. */
bool conf_blank(const char *s);
/* The text of scalar value V of key NAME (KEYAT where the key stands): a non-empty string
 * without NUL bytes, counted against the budget, in a new string the caller frees; NULL
 * (reported) otherwise. */
char *conf_get_str(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat);
/* A copy of S (NULL stays NULL), counted against the budget; NULL once it is spent. */
char *conf_dup_counted(struct pctx *p, const char *s, struct diag_pos at);
/* Frees SV's strings and vector, and leaves it empty. */
void conf_strv_free(struct conf_strv *sv);
/* Appends S to SV, which owns it then. SV is empty or was built by this function alone:
 * its room is implied by its length. */
void conf_strv_push(struct conf_strv *sv, char *s);
/* Appends copies of SRC's strings to DST, counted against the budget. */
void conf_strv_copy(struct pctx *p, struct conf_strv *dst, const struct conf_strv *src,
                    struct diag_pos at);
/* An email address, checked for the basic shape local@domain.tld. */
bool conf_email_ok(const char *s);
/* A list of strings (a single string counts as a list of one when ONE_OK). Returns 0 and
 * appends to OUT, or -1 (reported). EMAIL checks each item as an address. */
int conf_get_strv(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat,
                  struct conf_strv *out, bool one_ok, bool email);
/* Parses V as key CK's generic type into the section struct at BASE. */
void conf_set_generic(struct pctx *p, const struct conf_key *ck, struct fy_node *v,
                      struct diag_pos keyat, void *base);
/* A conf_pair_fn for a section of generic keys: ARG is a struct conf_generic_arg. */
void conf_generic_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                       struct fy_node *v, void *arg);

/* ---- conf_dupkeys.c ---- */

/* Checks every mapping under N (aliases are not followed: what they lead to is checked
 * where it stands). libfyaml's depth limit bounds the recursion. */
void conf_dup_keys(struct pctx *p, struct fy_node *n);

/* ---- conf_job.c ---- */

/* Frees what job J owns (before compaction) and zeroes it. */
void conf_job_clear(struct conf_job *j);
/* A conf_pair_fn for the keys of a job or of the defaults: ARG is a struct conf_job_arg. */
void conf_job_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                   struct fy_node *v, void *arg);
/* A conf_pair_fn for the jobs mapping, a job a pair: ARG is a struct conf_jobs_arg, whose
 * jobs get each valid one. */
void conf_jobs_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                    struct fy_node *v, void *arg);

/* ---- conf_executors.c ---- */

/* Gives C the built-in executor "local" (executors[0], its keys C->local), before the file
 * is read. */
void conf_executors_init(struct conf *c);
/* Frees C's executors. */
void conf_executors_free(struct conf *c);
/* A conf_pair_fn for the executors mapping: an executor a pair, its type first, then that
 * type's keys. */
void conf_executors_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                         struct fy_node *v, void *arg);
/* The job key "executor" (V, its key at AT): one of the executors, into J. */
void conf_job_executor(struct pctx *p, struct conf_job *j, struct fy_node *v, struct diag_pos at);
/* The checks job JB (named at AT, Q its name quoted) owes its executor's type, once its keys
 * are read: for ssh, a pinned commit and a host that can hold it. */
void conf_executor_job_check(struct pctx *p, const struct jobb *jb, const char *q,
                             struct diag_pos at);
/* Whether the jobs files are read by `eph daemon --from-repo` (conf_assume_from_repo). */
bool conf_from_repo(void);

/* ---- conf_exec_ssh.c ---- */

/* The keys of an ssh executor, and of one of its hosts. */
extern const struct conf_section conf_sec_ssh, conf_sec_ssh_host;
/* Reads the keys of E, of type ssh, from its mapping M ("type" aside) into a new struct
 * conf_ssh (E->keys), then checks them as a whole: what is required, the paths, the files
 * (known_hosts, identity_file) and each host's known_hosts entry. KEYAT is where E's name
 * stands. */
void conf_ssh_read(struct pctx *p, struct conf_executor *e, struct fy_node *m,
                   struct diag_pos keyat);
/* Frees a struct conf_ssh and its members; NULL is fine. */
void conf_ssh_free(void *keys);
/* conf_executor_job_check for a job JB on E, of type ssh; KEYS_OK: E's keys had no error. */
void conf_ssh_job_check(struct pctx *p, const struct conf_executor *e, bool keys_ok,
                        const struct jobb *jb, const char *q, struct diag_pos at);

/* ---- conf_exec_do.c ---- */

/* The keys of a digitalocean executor. */
extern const struct conf_section conf_sec_do;
/* Reads the keys of E, of type digitalocean, from M into a new struct conf_do (E->keys), then
 * checks them as a whole (what is required, the token file's mode). */
void conf_do_read(struct pctx *p, struct conf_executor *e, struct fy_node *m,
                  struct diag_pos keyat);
/* Frees a struct conf_do and its members; NULL is fine. */
void conf_do_free(void *keys);
/* conf_executor_job_check for a job JB on E, of type digitalocean. */
void conf_do_job_check(struct pctx *p, const struct conf_executor *e, bool keys_ok,
                       const struct jobb *jb, const char *q, struct diag_pos at);

/* ---- conf_exec_slurm.c ---- */

/* The keys of a slurm executor. */
extern const struct conf_section conf_sec_slurm;
/* Reads the keys of E, of type slurm, from M ("type" aside) into a new struct conf_slurm
 * (E->keys), then checks what is required (shared_dir). KEYAT is where E's name stands. */
void conf_slurm_read(struct pctx *p, struct conf_executor *e, struct fy_node *m,
                     struct diag_pos keyat);
/* Frees a struct conf_slurm and its members; NULL is fine. */
void conf_slurm_free(void *keys);
/* conf_executor_job_check for a job JB on E, of type slurm: its code travels as a commit. */
void conf_slurm_job_check(struct pctx *p, const struct conf_executor *e, bool keys_ok,
                          const struct jobb *jb, const char *q, struct diag_pos at);

/* ---- conf_secrets.c ---- */

/* The top-level "secrets" mapping M (KEY where it stands) into P->c->secrets: each secret's
 * kind and source checked, a file one where it can be seen (it exists, and group and others
 * cannot read it); a variable is not looked at (the daemon's environment may differ). */
void conf_secrets_read(struct pctx *p, struct fy_node *key, struct fy_node *v);
/* A job's (or the defaults') "secrets" mapping, merged into J->secrets. */
void conf_job_secrets(struct pctx *p, struct jobb *jb, struct fy_node *key, struct fy_node *v);
/* The checks of JB's secrets as a whole: none also set by its "env", none on an executor
 * that cannot carry them. */
void conf_secrets_job_check(struct pctx *p, const struct jobb *jb, const char *q,
                            struct diag_pos at);
/* Frees C's secrets. */
void conf_secrets_free(struct conf *c);
/* Reads V, the mapping { file: PATH } or { env: VAR } of what Q names in messages ("secret
 * \"x\"", "results_store.access_key"; KEY at AT), into OUT's kind, from (owned), line and
 * col (not its name), checking the file where it can see it as a secret's. false (reported,
 * OUT untouched) when it is not such a mapping. */
bool conf_secret_source(struct pctx *p, const char *q, struct fy_node *v, struct diag_pos at,
                        struct conf_secret *out);

/* ---- conf_store.c ---- */

/* The top-level "results_store" mapping V (KEY where it stands) into P->c->results_store. */
void conf_results_store_read(struct pctx *p, struct fy_node *key, struct fy_node *v);
/* Frees C's results_store and zeroes it. */
void conf_results_store_free(struct conf *c);

/* ---- conf_section.c ---- */

/* Sets C's sections to their defaults (docs/jobs-file.md), before the file is read. */
void conf_init_defaults(struct conf *c);
/* Walks the document's root into P->c. */
void conf_walk(struct pctx *p, struct fy_node *root);
/* The machine's zone, for the jobs that name none. */
void conf_local_zone(struct pctx *p);

#endif
