/* src/cmd/cmd.h: the subcommand table's entry type and what every command shares. */
#ifndef EPH_CMD_CMD_H
#define EPH_CMD_CMD_H
#include <stdbool.h>
#include <stdio.h>

#include "util/attr.h"

struct conf;

/* Exit status: 0 success, 1 a failed run or check, 2 bad usage or bad input. */
enum eph_exit { EPH_EXIT_OK = 0, EPH_EXIT_FAIL = 1, EPH_EXIT_USAGE = 2 };

struct cmd_ctx {
	const char *conf_path; /* -f FILE, else "ephemeron.yaml" */
	bool conf_path_given;  /* -f was given */
	struct conf *conf;     /* loaded by cmd_load_conf(), freed by main() */
	char *state_dir;       /* resolved by cmd_state_dir(), freed by main() */
};

struct cmd {
	const char *name;
	const char *usage;   /* one line per form, without the leading "eph " */
	const char *summary; /* one line for `eph --help` */
	const char *help;    /* options and details for `eph CMD --help`, or NULL */
	int (*exec)(struct cmd_ctx *ctx, int argc, char **argv); /* returns enum eph_exit */
};

extern const struct cmd cmd_validate;
extern const struct cmd cmd_next;
extern const struct cmd cmd_run;
extern const struct cmd cmd_runs;
extern const struct cmd cmd_show;
extern const struct cmd cmd_logs;
extern const struct cmd cmd_results;
extern const struct cmd cmd_agent;
extern const struct cmd cmd_gc;
extern const struct cmd cmd_daemon;
extern const struct cmd cmd_status;
extern const struct cmd cmd_cancel;
extern const struct cmd cmd_mail;
extern const struct cmd cmd_fetch;
extern const struct cmd cmd_pack;
extern const struct cmd cmd_sizes;
extern const struct cmd cmd_cost;
extern const struct cmd cmd_machines;

/* Prints "usage: eph ..." for CMD (and its help text when FULL) to F. */
void cmd_usage(const struct cmd *c, FILE *f, bool full);
/* Reports bad usage of CMD: "eph CMD: MSG" and the usage lines on stderr; returns
 * EPH_EXIT_USAGE. */
int cmd_usage_error(const struct cmd *c, const char *fmt, ...) EPH_PRINTF(2, 3);
/* Loads ctx->conf_path into ctx->conf unless already loaded. Prints every problem on stderr
 * and returns EPH_EXIT_USAGE on failure, EPH_EXIT_OK on success. */
EPH_MUST_CHECK int cmd_load_conf(struct cmd_ctx *ctx);
/* The state directory: $EPH_STATE, else $XDG_STATE_HOME/ephemeron, else
 * ~/.local/state/ephemeron, or /var/lib/ephemeron for root; a relative one is taken from the
 * current directory and made absolute. Borrowed from ctx. */
const char *cmd_state_dir(struct cmd_ctx *ctx);

#endif
