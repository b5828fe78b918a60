/* src/exec/exec_secrets.h: a run's secrets on the way to its agent. Where each value is comes
 * from the jobs file when the run is created (the same configuration that wrote spec.json's
 * names); the values are read right before the agent starts, by the process that starts it
 * (the daemon, `eph run`), so that a rotated file takes effect at the next run without a
 * reload; they go to the agent on its standard input as one blob (docs/rundir.md, "Secrets"),
 * and are never written anywhere. */
#ifndef EPH_EXEC_EXEC_SECRETS_H
#define EPH_EXEC_EXEC_SECRETS_H
#include <stddef.h>

#include "conf/conf.h"
#include "util/attr.h"

/* One of a run's secrets. Strings owned. */
struct exec_secret {
	char *var;  /* the command's variable */
	char *name; /* the secret's name in the jobs file */
	enum conf_secret_kind kind;
	char *from; /* the file's absolute path, or the variable of our environment */
};

struct exec_secrets {
	struct exec_secret *v;
	size_t n;
	/* the variables of the starter's environment that C's secrets are read from (every
	 * `env` secret, whichever job it is for): kept out of the agent's environment, so that a
	 * command gets a secret only by name, masked (exec_secrets_environ) */
	char **hide;
	size_t nhide;
};

/* Sets *OUT (which holds nothing) to the secrets of job J of configuration C, and the
 * variables to hide from every run of C (even one without secrets): copies. */
void exec_secrets_of_job(struct exec_secrets *out, const struct conf *c, const struct conf_job *j);
/* Frees what S holds and empties it. */
void exec_secrets_clear(struct exec_secrets *s);
/* Moves what FROM holds to TO (which holds nothing); FROM is left empty. */
void exec_secrets_move(struct exec_secrets *to, struct exec_secrets *from);

/* Reads the values of S now into a new blob: "VAR=VALUE\0" for each, in S's order; *BLOB
 * (free it with exec_secrets_wipe) and *LEN. 0; or -errno, *BLOB NULL and *WHY (caller frees)
 * the run's reason, "secrets: ..." naming the secret (never its value): a file missing,
 * unreadable, or readable by group or others; a variable not set in this process; a value
 * shorter than CONF_SECRET_MIN bytes or holding a NUL byte; more than CONF_SECRETS_MAX bytes
 * in all. A file's value is its whole content less one trailing newline. With S empty: 0,
 * *BLOB NULL, *LEN 0. */
EPH_MUST_CHECK int exec_secrets_read(const struct exec_secrets *s, char **blob, size_t *len,
                                     char **why);
/* The environment for an agent: ENVIRON without the variables S hides. A new vector of
 * borrowed strings (free the vector only), or NULL when S hides nothing (inherit ENVIRON). */
char **exec_secrets_environ(const struct exec_secrets *s, char *const *environ_);
/* Overwrites the LEN bytes of BLOB and frees it; NULL is fine. */
void exec_secrets_wipe(char *blob, size_t len);

#endif
