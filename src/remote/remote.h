/* src/remote/remote.h: what the ssh transport knows without a network: a host's
 * "[user@]addr[:port]", POSIX sh quoting, the argv and environment of OpenSSH's `ssh` for a
 * host, the known_hosts check (plain, [addr]:port and hashed entries) and the files' modes, and
 * how an ssh failure reads (host key, authentication, unreachable, timed out). The operations
 * on the loop are in remote/remote_op.h. Groundwork for the ssh executor: see docs/remote.md. */
#ifndef EPH_REMOTE_REMOTE_H
#define EPH_REMOTE_REMOTE_H
#include <stdbool.h>
#include <stddef.h>

#include "util/attr.h"
#include "util/diag.h"

#define REMOTE_PORT_DEFAULT    22
#define REMOTE_MAX_HOST        1024        /* "[user@]addr[:port]" as written in the jobs file */
#define REMOTE_MAX_KNOWN       (16u << 20) /* a known_hosts file */
/* sun_path holds 108 bytes with its NUL; ssh makes the master's socket as
 * "<ControlPath>.<16 random characters>" before renaming it, and %C is 40 hex digits. */
#define REMOTE_SUN_PATH        108
#define REMOTE_CONTROL_DIR_MAX (REMOTE_SUN_PATH - 1 - 1 - 40 - 17)

struct remote_host {
	char *user; /* NULL: the login name ssh picks (the local user's) */
	char *addr; /* a name, an IPv4 address or an IPv6 address (without its brackets) */
	int port;   /* 1..65535; REMOTE_PORT_DEFAULT when not written */
};

/* Parses TEXT, "[user@]addr[:port]", an IPv6 address in brackets ("eph@[fd00::5]:2222"),
 * whose first byte is at AT in the jobs file. 0 and *OUT filled (remote_host_clear), or -EINVAL
 * with every problem in D (at AT's line, its column plus the offset of the fault) and *OUT
 * zeroed. */
EPH_MUST_CHECK int remote_host_parse(const char *text, struct diag_pos at, struct remote_host *out,
                                     struct diag *d);
void remote_host_clear(struct remote_host *h); /* frees the members; zeroes; NULL is fine */
/* H as a person writes it (and remote_host_parse reads it back): "user@addr",
 * "user@[fd00::5]:2222", "[fd00::5]". Caller frees. */
char *remote_host_str(const struct remote_host *h);
/* H's name in known_hosts: "addr" on port 22, else "[addr]:port". Caller frees. */
char *remote_host_known_name(const struct remote_host *h);

/* S quoted for POSIX sh: 'S', each ' as '\''. Caller frees. */
char *remote_quote(const char *s);
/* PATH as one word of POSIX sh: quoted (remote_quote), except that a leading "~/" stays the
 * login user's home ("$HOME"/'rest'), as the executor's dir defaults to ~/.ephemeron. Caller
 * frees. */
char *remote_quote_path(const char *path);

/* How every ssh is run for one executor (borrowed strings, outliving the argv). */
struct remote_ssh {
	const char *program;       /* NULL: "ssh", found on PATH */
	const char *identity_file; /* -i; NULL: none (ssh then offers no key at all) */
	const char *known_hosts;   /* UserKnownHostsFile: the pinned host keys */
	const char *control_dir;   /* ControlPath=<control_dir>/%C; NULL: no multiplexing */
	int connect_timeout;       /* seconds; 0: 10 */
	int alive_interval;        /* ServerAliveInterval, seconds; 0: 5 */
	int alive_count;           /* ServerAliveCountMax; 0: 3 */
	int persist;               /* ControlPersist, seconds; 0: 600 */
};

/* The argv of ssh for running COMMAND (one string that the remote user's shell runs; NULL:
 * none, as with CTL) on H. CTL, when not NULL, is a control command instead ("check", "exit":
 * `ssh -O CTL`). NULL-terminated; the caller frees it with remote_argv_free. */
char **remote_argv(const struct remote_ssh *s, const struct remote_host *h, const char *ctl,
                   const char *command);
void remote_argv_free(char **argv);
/* ENV (environ when NULL) without what would let ssh consult an agent or ask a person:
 * SSH_AUTH_SOCK, SSH_AGENT_PID, SSH_ASKPASS, SSH_ASKPASS_REQUIRE, DISPLAY. NULL-terminated
 * array of borrowed strings; the caller frees the array only (free). */
char **remote_env(char *const *env);

/* Checks S's files before any connection, for `eph validate`: known_hosts is set, readable
 * and not writable by others than its owner and root; the identity file is not readable or
 * writable by group or others (ssh would refuse it too) and is not a directory; control_dir is
 * short enough for a socket path (REMOTE_CONTROL_DIR_MAX). 0, or -EINVAL with each problem in
 * D at AT. */
EPH_MUST_CHECK int remote_check_files(const struct remote_ssh *s, struct diag_pos at,
                                      struct diag *d);

/* Does the known_hosts text TEXT[0..LEN) hold an entry for H? Plain patterns (with * and ?
 * wildcards and !negation), "[addr]:port" and hashed "|1|salt|hash" (HMAC-SHA1) entries count;
 * @revoked lines and comments do not. */
bool remote_known_match(const char *text, size_t len, const struct remote_host *h);
/* The same for the file at PATH: 1 if it holds an entry, 0 if not, or -errno of reading it
 * (-E2BIG past REMOTE_MAX_KNOWN). */
EPH_MUST_CHECK int remote_known_has(const char *path, const struct remote_host *h);

/* For `eph validate`: adds to D, at AT, "host H has no entry in known_hosts FILE ..." (with
 * how to add one) when S's known_hosts holds none for H, or why it cannot be read. 0 when it
 * holds one, else -EINVAL (unreadable: -errno), with the message in D. */
EPH_MUST_CHECK int remote_check_host(const struct remote_ssh *s, const struct remote_host *h,
                                     struct diag_pos at, struct diag *d);

/* What ended an ssh: the command itself, or ssh's own failure (ssh exits 255 for those). */
enum remote_fail {
	REMOTE_OK,          /* the command exited 0 */
	REMOTE_STATUS,      /* the command exited with another status (see status) */
	REMOTE_HOST_KEY,    /* the host's key is unknown or changed: nothing ran there */
	REMOTE_AUTH,        /* the host refused our key */
	REMOTE_UNREACHABLE, /* refused, no route, the connection lost */
	REMOTE_TIMEOUT,     /* no answer within ConnectTimeout, ServerAlive or the op's timeout */
	REMOTE_SSH,         /* another failure of ssh (its exit status 255) */
	REMOTE_CANCELED,    /* remote_op_cancel */
	REMOTE_SPAWN,       /* ssh could not be started */
	REMOTE_LOCAL,       /* a local file could not be read (remote_ship) */
};

/* The name of F for messages and JSON: "ok", "status", "host key", "auth", "unreachable",
 * "timeout", "ssh", "canceled", "spawn", "local". */
const char *remote_fail_name(enum remote_fail f);
/* Removes from ERR (in place) the lines ssh prints about its own multiplexing that say
 * nothing of the command: "ControlSocket PATH already exists, disabling multiplexing" (two
 * first commands raced to be the master; this one connected on its own, as it should).
 * Returns ERR's new length. */
size_t remote_strip_noise(char *err);
/* Classifies an ssh that exited with STATUS (-1 when killed) and wrote ERR on stderr. */
enum remote_fail remote_classify(int status, const char *err);
/* The first host key fingerprint ("SHA256:...") in ERR, or NULL. Caller frees. */
char *remote_fingerprint(const char *err);
/* One line for a person about an ssh to HOST (remote_host_str) that ended as F with STATUS and
 * stderr ERR: "host key of eph@10.0.0.5 is unknown or changed (key SHA256:...): nothing ran
 * there", "eph@10.0.0.5 refused our key: Permission denied (publickey)", ... The last line of
 * ERR is quoted where it says more. Caller frees. */
char *remote_why(const char *host, enum remote_fail f, int status, const char *err);

#endif
