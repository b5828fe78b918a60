/* placeholder: being written */
#include "cmd/cmd.h"

static int
cmd_next_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	return EPH_EXIT_FAIL;
}

const struct cmd cmd_next = {
	.name = "next",
	.usage = "next [JOB] [-n N] [--json]\n"
	         "next --expr EXPR [--tz ZONE] [--after ISO8601] [-n N] [--json]",
	.summary = "show the next fire times of the jobs, or of one expression",
	.exec = cmd_next_exec,
};
