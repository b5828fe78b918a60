/* src/cmd/cmd_fetch.c: `eph fetch`, the source fetched now and resolved to the commit runs would
 * use; what the daemon runs, off its loop, to follow the repository (--from-repo) and to
 * resolve the code of each run it creates (with --refresh, --on-fetch-error, --commit). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "source/gitrun.h"
#include "source/source.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

static int cmd_fetch_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_fetch = {
	.name = "fetch",
	.usage = "fetch [--checkout] [--json]\n"
	         "fetch (--repo REPO | --repo-env VAR) [--branch BRANCH] [--timeout DURATION] "
	         "[--refresh DURATION] [--on-fetch-error use_last|fail] [--commit COMMIT] "
	         "[--checkout] [--keep N] [--json [--subject]]",
	.summary = "fetch the jobs' repository now and show the commit runs would use",
	.help = "Fetches the jobs file's source.repo into its mirror in the state directory now,\n"
	        "whatever source.refresh says, resolves source.branch and prints the commit a run\n"
	        "created now would be pinned to. With --repo, the repository REPO (a URL or the\n"
	        "path of a git repository) and BRANCH (default: the remote's default branch),\n"
	        "without reading a jobs file. When the fetch fails and the mirror has the branch\n"
	        "from an earlier fetch, that commit is printed with a warning on stderr (as runs\n"
	        "would use it, with source.on_fetch_error: use_last).\n\n"
	        "Options:\n"
	        "  --repo-env VAR      the repository is $VAR (a URL with a password in it stays\n"
	        "                      out of the command line, which every user can see)\n"
	        "  --checkout          also check the commit out into STATE/src/<commit>, as a run's\n"
	        "                      agent would, and print its path\n"
	        "  --keep N            then keep the N worktrees used last (default:\n"
	        "                      source.keep_worktrees, 5); those live runs hold stay\n"
	        "  --timeout DURATION  the fetch's timeout (default: source.fetch_timeout, 2m)\n"
	        "  --refresh DURATION  fetch only if the last attempt is older, as a run does\n"
	        "                      (default: 0, now)\n"
	        "  --on-fetch-error use_last|fail\n"
	        "                      as source.on_fetch_error (default: use_last)\n"
	        "  --commit COMMIT     with --repo: no fetch, the commit is COMMIT (it must be in\n"
	        "                      the mirror), as for the runs of `eph daemon --from-repo`\n"
	        "  --json              one JSON object: repo, branch, commit, mirror, worktree,\n"
	        "                      warning, note; on failure {\"error\": ...}\n"
	        "  --subject           with --json, then a second line {\"subject\": ...}: the\n"
	        "                      commit's subject line (null if git cannot say)\n\n"
	        "Exit status: 0 when a commit was resolved (even from an earlier fetch), 1 when\n"
	        "none could be, 2 for bad usage or a bad jobs file.\n",
	.exec = cmd_fetch_exec,
};

#define FETCH_SUBJECT_MS 5000 /* git log of one commit in the mirror: local */

static void
fetch_print(const struct source_pin *pin, const struct source_worktree *wt, bool json, bool subject)
{
	if (json) {
		json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "repo",
		                      pin->repo, "branch", pin->branch, "commit", pin->commit,
		                      "mirror", pin->mirror, "worktree", wt->path, "warning",
		                      pin->warning, "note", pin->note, "dir", pin->dir);

		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
		if (subject && pin->commit != NULL) {
			/* after the answer is out: its reader goes on without waiting for this */
			char *s;

			fflush(stdout);
			s = source_commit_subject(pin->mirror, pin->commit, FETCH_SUBJECT_MS);
			o = json_pack("{s:s?}", "subject", s);
			json_dumpf(o, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(o);
			free(s);
		}
		return;
	}
	if (pin->warning != NULL)
		fprintf(stderr, "eph fetch: warning: %s\n", pin->warning);
	if (pin->note != NULL)
		fprintf(stderr, "eph fetch: note: %s\n", pin->note);
	if (pin->in_place) {
		printf("in place: %s (no repository to fetch)\n", pin->dir);
		return;
	}
	printf("%s %s %s\n", pin->commit, pin->branch, pin->repo);
	if (wt->path != NULL)
		printf("checked out in %s\n", wt->path);
}

static void
fetch_stop(int sig)
{
	(void)sig;
	gitrun_abort();
}

/* SIGTERM, SIGINT: the git in progress is killed and the command fails at once (nothing half
 * written: a fetch updates the mirror's refs atomically, and its state is written after). */
static void
fetch_on_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fetch_stop;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
}

static int
fetch_fail(struct diag *d, bool json)
{
	/* without a file, the message alone: "eph fetch: " or the JSON says whose it is */
	char *msg = d->n == 0                  ? xstrdup("unknown error")
	            : d->items[0].file == NULL ? xstrdup(d->items[0].msg)
	                                       : diag_format(d, 0);

	if (json) {
		json_t *o = json_pack("{s:s}", "error", msg);

		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
	} else {
		fprintf(stderr, "eph fetch: %s\n", msg);
	}
	free(msg);
	return EPH_EXIT_FAIL;
}

static int
cmd_fetch_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "repo-env", required_argument, NULL, 'e' },
		{ "branch", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "checkout", no_argument, NULL, 'c' },
		{ "keep", required_argument, NULL, 'k' },
		{ "refresh", required_argument, NULL, 'R' },
		{ "on-fetch-error", required_argument, NULL, 'o' },
		{ "commit", required_argument, NULL, 'C' },
		{ "subject", no_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL, *branch = NULL, *timeout = NULL, *keep = NULL, *why = NULL;
	const char *refresh = NULL, *on_error = NULL, *commit = NULL;
	char *base = NULL;
	struct source_worktree wt = { NULL, -1, false };
	struct source_pin pin;
	struct conf_source src;
	bool checkout = false, json = false, subject = false;
	struct diag d;
	int opt, rc = EPH_EXIT_OK;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			repo = optarg;
			break;
		case 'e':
			/* a URL with a password stays out of argv, which `ps` shows everyone */
			if ((repo = getenv(optarg)) == NULL || *repo == '\0')
				return cmd_usage_error(&cmd_fetch, "--repo-env: $%s is not set",
				                       optarg);
			break;
		case 'b':
			branch = optarg;
			break;
		case 't':
			timeout = optarg;
			break;
		case 'c':
			checkout = true;
			break;
		case 'k':
			keep = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'R':
			refresh = optarg;
			break;
		case 'o':
			on_error = optarg;
			break;
		case 'C':
			commit = optarg;
			break;
		case 's':
			subject = true;
			break;
		default:
			return cmd_usage_error(&cmd_fetch, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cmd_usage_error(&cmd_fetch, "too many arguments");
	if (branch != NULL && repo == NULL)
		return cmd_usage_error(&cmd_fetch, "--branch goes with --repo");
	if (commit != NULL && repo == NULL)
		return cmd_usage_error(&cmd_fetch, "--commit goes with --repo");
	if (on_error != NULL && strcmp(on_error, "use_last") != 0 && strcmp(on_error, "fail") != 0)
		return cmd_usage_error(&cmd_fetch, "--on-fetch-error: use_last or fail, not '%s'",
		                       on_error);
	if (repo != NULL) {
		conf_source_defaults(&src);
		src.repo = (char *)repo;
		src.branch = (char *)branch;
	} else {
		if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
			return rc;
		src = ctx->conf->source;
		base = xstrdup(ctx->conf->dir);
	}
	if (timeout != NULL && units_parse_duration(timeout, &src.fetch_timeout, &why) < 0) {
		free(base);
		return cmd_usage_error(&cmd_fetch, "--timeout: bad duration '%s': %s", timeout,
		                       why);
	}
	if (keep != NULL) {
		int64_t k;

		if (units_parse_count(keep, 1, 1000, &k) < 0) {
			free(base);
			return cmd_usage_error(&cmd_fetch,
			                       "--keep: a number from 1 to 1000, not '%s'", keep);
		}
		src.keep_worktrees = (int)k;
	}
	src.refresh = 0; /* now, whatever the last attempt */
	if (refresh != NULL && units_parse_duration(refresh, &src.refresh, &why) < 0)
		return cmd_usage_error(&cmd_fetch, "--refresh: bad duration '%s': %s", refresh,
		                       why);
	if (on_error != NULL)
		src.on_fetch_error =
		        strcmp(on_error, "fail") == 0 ? CONF_FETCH_FAIL : CONF_FETCH_USE_LAST;
	fetch_on_stop(); /* a stop ends the git it runs too (it has its own process group) */
	src.commit = (char *)commit;
	diag_init(&d);
	if (base == NULL && (base = getcwd(NULL, 0)) == NULL) {
		fprintf(stderr, "eph fetch: cannot get the current directory: %s\n",
		        strerror(errno));
		return EPH_EXIT_FAIL;
	}
	if (source_resolve(cmd_state_dir(ctx), &src, base, &pin, &d) < 0) {
		rc = fetch_fail(&d, json);
		goto out;
	}
	if (checkout && !pin.in_place &&
	    source_checkout(cmd_state_dir(ctx), pin.mirror, pin.commit, src.keep_worktrees, &wt,
	                    &d) < 0) {
		rc = fetch_fail(&d, json);
		goto out;
	}
	fetch_print(&pin, &wt, json, subject);
out:
	source_worktree_release(&wt);
	source_pin_clear(&pin);
	diag_free(&d);
	free(base);
	return rc;
}
