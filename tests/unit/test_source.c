/* tests/unit/test_source.c: mirrors, resolving, worktrees, with real git repositories made in a
 * temporary directory (and a real `git daemon` on 127.0.0.1 for the network case). The test
 * itself drives git through system(); the code under test never uses a shell. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "gitfx.h"
#include "source/gitrun.h"
#include "source/source.h"
#include "util/diag.h"
#include "util/redact.h"
#include "util/xalloc.h"

static struct conf_source
src_of(const char *repo, const char *branch, int64_t refresh, enum conf_fetch_error on_err)
{
	struct conf_source s = {
		.repo = (char *)repo,
		.branch = (char *)branch,
		.refresh = refresh,
		.on_fetch_error = on_err,
		.fetch_timeout = 30,
		.keep_worktrees = 5,
	};

	return s;
}

/* Resolves and expects success; returns the commit (caller frees) and the warning/note. */
static char *
resolve_ok(const struct gitfx *f, const struct conf_source *s, char **warning, char **note)
{
	struct source_pin pin;
	struct diag d;
	char *commit;
	int rc;

	diag_init(&d);
	rc = source_resolve(f->state, s, f->root, &pin, &d);
	if (rc != 0) {
		diag_print(&d, stderr);
		fail_msg("source_resolve: %d", rc);
	}
	assert_false(pin.in_place);
	assert_non_null(pin.mirror);
	commit = xstrdup(pin.commit);
	if (warning != NULL)
		*warning = pin.warning != NULL ? xstrdup(pin.warning) : NULL;
	if (note != NULL)
		*note = pin.note != NULL ? xstrdup(pin.note) : NULL;
	source_pin_clear(&pin);
	diag_free(&d);
	return commit;
}

/* Resolves and expects failure; returns the message (caller frees). */
static char *
resolve_fails(const struct gitfx *f, const struct conf_source *s)
{
	struct source_pin pin;
	struct diag d;
	char *msg;

	diag_init(&d);
	assert_true(source_resolve(f->state, s, f->root, &pin, &d) < 0);
	assert_null(pin.commit);
	assert_int_equal(diag_nerrors(&d), 1);
	msg = diag_format(&d, 0);
	diag_free(&d);
	return msg;
}

static void
redact_strips_userinfo_from_every_url(void **state)
{
	char *r;

	(void)state;
	r = gitrun_redact("fatal: unable to access 'https://user:tok3n@example.com/x.git/': "
	                  "and ssh://git@host:22/y and http://a@b@c/z");
	assert_string_equal(r, "fatal: unable to access 'https://example.com/x.git/': and "
	                       "ssh://host:22/y and http://c/z");
	free(r);
	r = gitrun_redact("git@github.com:acme/x.git /srv/repo file:///srv/repo.git");
	assert_string_equal(r, "git@github.com:acme/x.git /srv/repo file:///srv/repo.git");
	free(r);
	/* the same function serves conf's messages */
	r = redact_url("not \"https://bob:hunter2@smtp.example.com\" (smtps://x@y:465?a=b@c)");
	assert_string_equal(r, "not \"https://smtp.example.com\" (smtps://y:465?a=b@c)");
	free(r);
	assert_null(redact_url(NULL));
}

static void
redact_value_replaces_every_occurrence_of_a_secret(void **state)
{
	char *r;

	(void)state;
	r = redact_value("said: k3y and k3yk3y, end k3y", "k3y", "[key]");
	assert_string_equal(r, "said: [key] and [key][key], end [key]");
	free(r);
	r = redact_value("nothing here", "k3y", "[key]");
	assert_string_equal(r, "nothing here");
	free(r);
	r = redact_value("no secret given", NULL, "[key]");
	assert_string_equal(r, "no secret given");
	free(r);
	r = redact_value("", "", "[key]");
	assert_string_equal(r, "");
	free(r);
	assert_null(redact_value(NULL, "k3y", "[key]"));
}

static void
git_runs_without_prompt_and_with_batch_ssh(void **state)
{
	const char *a[] = { "-c", "alias.env=!echo \"$GIT_TERMINAL_PROMPT|$GIT_SSH_COMMAND\"",
		            "env", NULL };
	struct gitrun_result r;

	(void)state;
	unsetenv("GIT_SSH_COMMAND");
	unsetenv("GIT_SSH");
	setenv("GIT_TERMINAL_PROMPT", "1", 1);
	assert_int_equal(gitrun(a, 10000, &r), 0);
	assert_true(gitrun_ok(&r));
	assert_string_equal(r.out, "0|ssh -o BatchMode=yes\n");
	gitrun_result_free(&r);
	setenv("GIT_SSH_COMMAND", "ssh -i /my/key", 1);
	assert_int_equal(gitrun(a, 10000, &r), 0);
	assert_string_equal(r.out, "0|ssh -i /my/key\n"); /* the user's own is kept */
	gitrun_result_free(&r);
	unsetenv("GIT_SSH_COMMAND");
	unsetenv("GIT_TERMINAL_PROMPT");
}

static void
timeout_kills_git_and_its_children(void **state)
{
	const char *a[] = { "-c", "alias.hang=!sleep 30", "hang", NULL };
	struct gitrun_result r;
	struct timespec t0, t1;
	char *why;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(gitrun(a, 300, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(r.timed_out);
	assert_false(gitrun_ok(&r));
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	why = gitrun_why(&r, 300);
	assert_non_null(strstr(why, "timed out"));
	free(why);
	gitrun_result_free(&r);
}

static void
no_repo_runs_in_place_in_the_jobs_file_directory(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(NULL, NULL, 60, CONF_FETCH_USE_LAST);
	struct source_pin pin;
	struct diag d;

	diag_init(&d);
	free(gitfx_commit_push(f, "a.txt", "one"));
	assert_int_equal(source_resolve(f->state, &s, f->work, &pin, &d), 0);
	assert_true(pin.in_place);
	assert_string_equal(pin.dir, f->work);
	assert_null(pin.commit);
	assert_null(pin.mirror);
	source_pin_clear(&pin);
	diag_free(&d);
}

static void
local_path_that_is_not_git_runs_in_place(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of("plain", NULL, 60, CONF_FETCH_USE_LAST);
	struct source_pin pin;
	struct diag d;
	char *want = xasprintf("%s/plain", f->root);

	gitfx_sh("mkdir '%s'", want);
	diag_init(&d);
	assert_int_equal(source_resolve(f->state, &s, f->root, &pin, &d), 0);
	assert_true(pin.in_place);
	assert_string_equal(pin.dir, want);
	assert_null(pin.mirror);
	source_pin_clear(&pin);
	diag_free(&d);
	free(want);
}

static void
missing_local_path_is_an_error(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of("nowhere", NULL, 60, CONF_FETCH_USE_LAST);
	char *msg = resolve_fails(f, &s);

	assert_non_null(strstr(msg, "source.repo nowhere"));
	free(msg);
}

static void
push_between_two_resolves_gives_the_new_commit(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(f->url, NULL, 0, CONF_FETCH_USE_LAST);
	char *a = gitfx_commit_push(f, "a.txt", "one"), *b, *got;

	got = resolve_ok(f, &s, NULL, NULL);
	assert_string_equal(got, a);
	free(got);
	b = gitfx_commit_push(f, "a.txt", "two");
	got = resolve_ok(f, &s, NULL, NULL);
	assert_string_equal(got, b);
	free(got);
	free(a);
	free(b);
}

static void
local_git_path_is_mirrored_and_pinned(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of("work", "main", 0, CONF_FETCH_USE_LAST);
	char *a = gitfx_commit_push(f, "a.txt", "one"), *got = resolve_ok(f, &s, NULL, NULL);

	assert_string_equal(got, a);
	free(got);
	free(a);
}

static void
refresh_interval_is_honoured(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(f->url, "main", 3600, CONF_FETCH_USE_LAST);
	char *a = gitfx_commit_push(f, "a.txt", "one"), *b, *got, *key, *stamp;
	struct stat st1, st2;

	got = resolve_ok(f, &s, NULL, NULL);
	assert_string_equal(got, a);
	free(got);
	key = source_mirror_key(f->url);
	stamp = xasprintf("%s/mirrors/%s.git/eph-state.json", f->state, key);
	assert_int_equal(stat(stamp, &st1), 0);
	b = gitfx_commit_push(f, "a.txt", "two");
	got = resolve_ok(f, &s, NULL, NULL);
	assert_string_equal(got, a); /* not fetched again within an hour */
	free(got);
	assert_int_equal(stat(stamp, &st2), 0);
	assert_int_equal(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
	assert_int_equal(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	s.refresh = 0;
	got = resolve_ok(f, &s, NULL, NULL);
	assert_string_equal(got, b);
	free(got);
	free(key);
	free(stamp);
	free(a);
	free(b);
}

static void
failed_fetch_uses_last_commit_with_a_warning_or_fails(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(f->url, NULL, 0, CONF_FETCH_USE_LAST);
	char *a = gitfx_commit_push(f, "a.txt", "one"), *got, *warning = NULL, *msg;

	got = resolve_ok(f, &s, &warning, NULL);
	assert_null(warning);
	free(got);
	gitfx_sh("mv '%s' '%s.gone'", f->origin, f->origin);
	got = resolve_ok(f, &s, &warning, NULL);
	assert_string_equal(got, a);
	assert_non_null(warning);
	assert_non_null(strstr(warning, "cannot fetch"));
	assert_non_null(strstr(warning, a));
	free(warning);
	free(got);
	s.on_fetch_error = CONF_FETCH_FAIL;
	msg = resolve_fails(f, &s);
	assert_non_null(strstr(msg, "cannot fetch"));
	assert_non_null(strstr(msg, "on_fetch_error is fail"));
	free(msg);
	free(a);
}

static void
first_clone_failure_is_an_error_either_way(void **state)
{
	struct gitfx *f = *state;
	char *url = xasprintf("file://%s/none.git", f->root), *msg;
	struct conf_source s = src_of(url, NULL, 0, CONF_FETCH_USE_LAST);

	msg = resolve_fails(f, &s);
	assert_non_null(strstr(msg, "cannot clone"));
	free(msg);
	free(url);
}

static void
credentials_never_appear_in_messages(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s =
	        src_of("http://alice:s3cret@127.0.0.1:1/x.git", NULL, 0, CONF_FETCH_USE_LAST);
	char *msg = resolve_fails(f, &s);

	assert_null(strstr(msg, "s3cret"));
	assert_null(strstr(msg, "alice"));
	assert_non_null(strstr(msg, "http://127.0.0.1:1/x.git"));
	free(msg);
}

static void
force_push_is_followed_and_noted(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(f->url, "main", 0, CONF_FETCH_USE_LAST);
	char *a = gitfx_commit_push(f, "a.txt", "one"), *b = gitfx_commit_push(f, "a.txt", "two"),
	     *c, *got;
	char *note = NULL;

	got = resolve_ok(f, &s, NULL, &note);
	assert_string_equal(got, b);
	assert_null(note);
	free(got);
	gitfx_sh(
	        "cd '%s' && git reset -q --hard '%s' && echo three > a.txt && git commit -qam three && "
	        "git push -q --force origin main 2>/dev/null",
	        f->work, a);
	c = gitfx_sh_out("git -C '%s' rev-parse HEAD", f->work);
	got = resolve_ok(f, &s, NULL, &note);
	assert_string_equal(got, c);
	assert_non_null(note);
	assert_non_null(strstr(note, "non-fast-forward"));
	free(note);
	free(got);
	free(a);
	free(b);
	free(c);
}

static void
deleted_branch_runs_last_commit_or_fails_clearly(void **state)
{
	struct gitfx *f = *state;
	struct conf_source s = src_of(f->url, "feature", 0, CONF_FETCH_USE_LAST);
	char *a = gitfx_commit_push(f, "a.txt", "one"), *got, *warning = NULL, *msg;

	gitfx_sh("git -C '%s' push -q origin main:feature 2>/dev/null", f->work);
	got = resolve_ok(f, &s, &warning, NULL);
	assert_string_equal(got, a);
	assert_null(warning);
	free(got);
	gitfx_sh("git -C '%s' push -q origin :feature 2>/dev/null", f->work);
	got = resolve_ok(f, &s, &warning, NULL);
	assert_string_equal(got, a);
	assert_non_null(warning);
	assert_non_null(strstr(warning, "branch feature no longer exists"));
	free(warning);
	free(got);
	s.on_fetch_error = CONF_FETCH_FAIL;
	msg = resolve_fails(f, &s);
	assert_non_null(strstr(msg, "branch feature no longer exists"));
	assert_non_null(strstr(msg, "last known commit was"));
	assert_non_null(strstr(msg, a));
	free(msg);
	s.branch = (char *)"never";
	msg = resolve_fails(f, &s);
	assert_non_null(strstr(msg, "branch never does not exist"));
	free(msg);
	free(a);
}

static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool
port_open(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_port = htons((uint16_t)port),
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	assert_true(fd >= 0);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void
git_daemon_stopped_gives_last_commit_and_warning(void **state)
{
	struct gitfx *f = *state;
	int port = free_port(), status;
	char *portarg = xasprintf("--port=%d", port), *base = xasprintf("--base-path=%s", f->root);
	char *url = xasprintf("git://127.0.0.1:%d/origin.git", port), *a, *b, *got, *warning;
	struct conf_source s = src_of(url, NULL, 0, CONF_FETCH_USE_LAST);
	pid_t pid;

	a = gitfx_commit_push(f, "a.txt", "one");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY); /* the port probes make it complain */

		if (null >= 0)
			dup2(null, 2);
		execlp("git", "git", "daemon", "--reuseaddr", "--listen=127.0.0.1", portarg, base,
		       "--export-all", f->root, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !port_open(port); i++)
		usleep(50 * 1000);
	got = resolve_ok(f, &s, &warning, NULL);
	assert_string_equal(got, a);
	assert_null(warning);
	free(got);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	b = gitfx_commit_push(f, "a.txt", "two");
	got = resolve_ok(f, &s, &warning, NULL);
	assert_string_equal(got, a);
	assert_non_null(warning);
	assert_non_null(strstr(warning, url));
	free(warning);
	free(got);
	free(a);
	free(b);
	free(url);
	free(portarg);
	free(base);
}

/* Resolves the current tip and returns the mirror (caller frees) and commit. */
static char *
mirror_of(const struct gitfx *f, char **commit)
{
	struct conf_source s = src_of(f->url, NULL, 0, CONF_FETCH_USE_LAST);
	struct source_pin pin;
	struct diag d;
	char *m;

	diag_init(&d);
	assert_int_equal(source_resolve(f->state, &s, f->root, &pin, &d), 0);
	m = xstrdup(pin.mirror);
	*commit = xstrdup(pin.commit);
	source_pin_clear(&pin);
	diag_free(&d);
	return m;
}

static void
checkout_is_read_only_and_made_once(void **state)
{
	struct gitfx *f = *state;
	char *a = gitfx_commit_push(f, "a.txt", "one"), *commit, *mirror = mirror_of(f, &commit),
	     *head;
	char *file;
	struct source_worktree wt, wt2;
	struct diag d;
	struct stat st;

	diag_init(&d);
	assert_int_equal(source_checkout(f->state, mirror, commit, 5, &wt, &d), 0);
	assert_true(wt.built);
	assert_true(wt.hold_fd >= 0);
	file = xasprintf("%s/a.txt", wt.path);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0222, 0);
	assert_int_equal(stat(wt.path, &st), 0);
	assert_int_equal(st.st_mode & 0222, 0);
	head = gitfx_sh_out("git -C '%s' rev-parse HEAD", wt.path);
	assert_string_equal(head, a);
	assert_int_equal(source_checkout(f->state, mirror, commit, 5, &wt2, &d), 0);
	assert_false(wt2.built);
	assert_string_equal(wt.path, wt2.path);
	/* Held by two runs: gc cannot remove it. */
	{
		char *srcdir = xasprintf("%s/src", f->state);

		assert_int_equal(source_cache_remove(srcdir, commit, false, NULL), -EBUSY);
		source_worktree_release(&wt);
		assert_int_equal(source_cache_remove(srcdir, commit, false, NULL), -EBUSY);
		source_worktree_release(&wt2);
		{
			uint64_t freed = 0;

			assert_int_equal(source_cache_remove(srcdir, commit, true, &freed), 0);
			assert_true(freed > 0);
			assert_int_equal(stat(file, &st), 0); /* dry run */
			assert_int_equal(source_cache_remove(srcdir, commit, false, NULL), 0);
			assert_int_not_equal(stat(file, &st), 0);
		}
		free(srcdir);
	}
	assert_int_equal(source_checkout(f->state, mirror, "nothex", 5, &wt, &d), -EINVAL);
	diag_free(&d);
	free(head);
	free(file);
	free(a);
	free(commit);
	free(mirror);
}

static void
two_concurrent_checkouts_build_once(void **state)
{
	struct gitfx *f = *state;
	char *a, *commit, *mirror;
	int go[2], built = 0;
	pid_t pids[2];

	/* A few hundred files, so that the checkout takes long enough to overlap. */
	gitfx_sh("cd '%s' && for i in $(seq 1 300); do echo $i > f$i.txt; done", f->work);
	a = gitfx_commit_push(f, "a.txt", "one");
	mirror = mirror_of(f, &commit);
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct source_worktree wt;
			struct diag d;
			char c;

			close(go[1]);
			if (read(go[0], &c, 1) != 0)
				_exit(3);
			diag_init(&d);
			if (source_checkout(f->state, mirror, commit, 5, &wt, &d) < 0)
				_exit(2);
			_exit(wt.built ? 1 : 0);
		}
	}
	close(go[0]);
	close(go[1]); /* both start now */
	for (int i = 0; i < 2; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) <= 1);
		built += WEXITSTATUS(status);
	}
	assert_int_equal(built, 1);
	free(a);
	free(commit);
	free(mirror);
}

static void
submodules_are_checked_out(void **state)
{
	struct gitfx *f = *state;
	char *sub = xasprintf("%s/sub.git", f->root), *subwork = xasprintf("%s/subwork", f->root);
	char *a, *commit, *mirror, *file;
	struct source_worktree wt;
	struct diag d;
	struct stat st;

	gitfx_sh("git init -q --bare -b main '%s' && git init -q -b main '%s' && cd '%s' && "
	         "echo lib > lib.txt && git add lib.txt && git commit -qm lib && "
	         "git push -q '%s' main 2>/dev/null",
	         sub, subwork, subwork, sub);
	gitfx_sh(
	        "cd '%s' && git -c protocol.file.allow=always submodule add -q '%s' lib >/dev/null 2>&1",
	        f->work, sub);
	a = gitfx_commit_push(f, "a.txt", "one");
	mirror = mirror_of(f, &commit);
	diag_init(&d);
	if (source_checkout(f->state, mirror, commit, 5, &wt, &d) < 0) {
		diag_print(&d, stderr);
		fail();
	}
	file = xasprintf("%s/lib/lib.txt", wt.path);
	assert_int_equal(stat(file, &st), 0);
	source_worktree_release(&wt);
	diag_free(&d);
	free(file);
	free(a);
	free(commit);
	free(mirror);
	free(sub);
	free(subwork);
}

static void
prune_removes_least_recently_used_but_never_held(void **state)
{
	struct gitfx *f = *state;
	char *c[4], *mirror = NULL, *path;
	struct source_worktree held, wt;
	struct diag d;
	struct stat st;

	diag_init(&d);
	for (int i = 0; i < 4; i++) {
		char text[8];

		snprintf(text, sizeof(text), "v%d", i);
		free(gitfx_commit_push(f, "a.txt", text));
		free(mirror);
		mirror = mirror_of(f, &c[i]);
	}
	assert_int_equal(source_checkout(f->state, mirror, c[0], 2, &held, &d), 0);
	for (int i = 1; i < 4; i++) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		nanosleep(&ts, NULL); /* distinct mtimes */
		assert_int_equal(source_checkout(f->state, mirror, c[i], 2, &wt, &d), 0);
		source_worktree_release(&wt);
	}
	/* keep 2: c[3] and c[2] are the most recent; c[1] goes; c[0] is held, so it stays. */
	for (int i = 0; i < 4; i++) {
		path = xasprintf("%s/src/%s", f->state, c[i]);
		if (i == 1)
			assert_int_not_equal(stat(path, &st), 0);
		else
			assert_int_equal(stat(path, &st), 0);
		free(path);
		free(c[i]);
	}
	source_worktree_release(&held);
	diag_free(&d);
	free(mirror);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Two checkouts of a missing commit start together; `git clone` takes a second longer (a
 * wrapper first on PATH), so both find it missing. The winner holds its worktree for 4 s after
 * its build: the loser must get it as soon as the build is done, not when the winner's run
 * ends. */
static void
checkout_race_loser_waits_for_the_build_not_the_winners_run(void **state)
{
	struct gitfx *f = *state;
	char *a = gitfx_commit_push(f, "a.txt", "one"), *commit, *mirror = mirror_of(f, &commit);
	char *bin = xasprintf("%s/bin", f->root), *git = gitfx_sh_out("command -v git");
	int go[2], done[2], built = 0;
	int64_t t[2];
	pid_t pids[2];

	gitfx_sh("mkdir '%s' && printf '#!/bin/sh\\ncase \"$1\" in clone) sleep 1;; esac\\nexec %s "
	         "\"$@\"\\n' > '%s/git' && chmod +x '%s/git'",
	         bin, git, bin, bin);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct source_worktree wt = { 0 };
			struct diag d;
			char *path = xasprintf("%s:%s", bin, getenv("PATH"));
			int64_t when;
			int code = 0;
			char c;

			setenv("PATH", path, 1);
			close(go[1]);
			close(done[0]);
			diag_init(&d);
			if (read(go[0], &c, 1) != 0) {
				code = 3;
			} else if (source_checkout(f->state, mirror, commit, 5, &wt, &d) != 0) {
				code = 2;
			} else {
				when = now_ms();
				if (write(done[1], &when, sizeof(when)) != (ssize_t)sizeof(when))
					code = 4;
				else if (wt.built)
					sleep(4); /* the winner's run */
				if (code == 0)
					code = wt.built ? 1 : 0;
				source_worktree_release(&wt);
			}
			/* free all before _exit: under valgrind a forked child's leaks fail the
			 * test */
			diag_free(&d);
			free(path);
			free(a);
			free(commit);
			free(mirror);
			free(bin);
			free(git);
			_exit(code);
		}
	}
	close(go[0]);
	close(go[1]);
	close(done[1]);
	for (int i = 0; i < 2; i++)
		assert_int_equal(read(done[0], &t[i], sizeof(t[i])), (ssize_t)sizeof(t[i]));
	close(done[0]);
	for (int i = 0; i < 2; i++) {
		int st;

		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) <= 1);
		built += WEXITSTATUS(st);
	}
	assert_int_equal(built, 1);
	/* both got it within a second of each other, not 4 s apart */
	assert_true(t[1] - t[0] < 1000);
	free(a);
	free(commit);
	free(mirror);
	free(bin);
	free(git);
}

/* Waiting for another's build gives up when the cancel fd fires or the deadline passes. */
static void
build_lock_wait_gives_up_on_cancel_and_on_deadline(void **state)
{
	struct gitfx *f = *state;
	char *p = xasprintf("%s/x.build", f->state);
	int held = source_cache_build_lock(p, -1, 0), cancel[2], fd;
	int64_t t0;

	assert_true(held >= 0);
	t0 = now_ms();
	assert_int_equal(source_cache_build_lock(p, -1, t0 + 200), -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 200 && now_ms() - t0 < 1000);
	assert_int_equal(pipe(cancel), 0);
	assert_int_equal(write(cancel[1], "x", 1), 1);
	t0 = now_ms();
	assert_int_equal(source_cache_build_lock(p, cancel[0], 0), -ECANCELED);
	assert_true(now_ms() - t0 < 500);
	close(held);
	fd = source_cache_build_lock(p, cancel[0] /* readable, but the lock is free */, 0);
	assert_true(fd >= 0);
	close(fd);
	close(cancel[0]);
	close(cancel[1]);
	free(p);
}

/* A mirror is not removed while a clone from it runs (its lock held shared) nor while a
 * worktree borrows its objects; git never gc's a mirror by itself. */
static void
mirror_is_kept_while_a_clone_or_a_worktree_needs_it(void **state)
{
	struct gitfx *f = *state;
	char *a = gitfx_commit_push(f, "a.txt", "one"), *commit, *mirror = mirror_of(f, &commit);
	char *name = xstrdup(strrchr(mirror, '/') + 1), *lockp = xasprintf("%s.lock", mirror);
	char *srcdir = xasprintf("%s/src", f->state), *gcauto, *build;
	struct source_worktree wt;
	struct diag d;
	struct stat st;
	uint64_t freed = 0;
	int fd;

	gcauto = gitfx_sh_out("git --git-dir '%s' config --get gc.auto", mirror);
	assert_string_equal(gcauto, "0");
	/* a clone in progress holds the mirror's lock shared */
	fd = source_cache_lock(lockp, true);
	assert_true(fd >= 0);
	assert_int_equal(source_mirror_remove(f->state, name, false, NULL), -EBUSY);
	close(fd);
	diag_init(&d);
	assert_int_equal(source_checkout(f->state, mirror, commit, 5, &wt, &d), 0);
	build = xasprintf("%s.build", wt.path);
	assert_int_equal(stat(build, &st), 0);
	/* a held worktree borrows its objects: kept, also in a dry run */
	assert_int_equal(source_mirror_remove(f->state, name, true, &freed), -ENOTEMPTY);
	assert_int_equal(source_mirror_remove(f->state, name, false, NULL), -ENOTEMPTY);
	assert_int_equal(stat(mirror, &st), 0);
	source_worktree_release(&wt);
	/* not held any more: a dry run would remove it (gc removes the worktree first), a real
	 * one still refuses while the worktree is there */
	assert_int_equal(source_mirror_remove(f->state, name, true, &freed), 0);
	assert_true(freed > 0);
	assert_int_equal(source_mirror_remove(f->state, name, false, NULL), -ENOTEMPTY);
	assert_int_equal(source_cache_remove(srcdir, commit, false, NULL), 0);
	assert_int_not_equal(stat(build, &st), 0); /* the build lock goes with the entry */
	assert_int_equal(source_mirror_remove(f->state, name, false, NULL), 0);
	assert_int_not_equal(stat(mirror, &st), 0);
	assert_int_not_equal(stat(lockp, &st), 0);
	diag_free(&d);
	free(a);
	free(commit);
	free(mirror);
	free(name);
	free(lockp);
	free(srcdir);
	free(gcauto);
	free(build);
}

/* The mirror's key is the first 16 bytes of SHA-256 of the URL, in hex: a state directory
 * made by an earlier version (or another SHA-256 library) finds its mirrors again. */
static void
mirror_key_is_the_sha256_of_the_url(void **state)
{
	char *key = source_mirror_key("/tmp/fr/repo");

	(void)state;
	/* printf %s /tmp/fr/repo | sha256sum */
	assert_string_equal(key, "6734f4535d923b62b127e10a8d5bf545");
	free(key);
	key = source_mirror_key("");
	assert_string_equal(key, "e3b0c44298fc1c149afbf4c8996fb924");
	free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mirror_key_is_the_sha256_of_the_url),
		cmocka_unit_test(redact_strips_userinfo_from_every_url),
		cmocka_unit_test(redact_value_replaces_every_occurrence_of_a_secret),
		cmocka_unit_test(git_runs_without_prompt_and_with_batch_ssh),
		cmocka_unit_test(timeout_kills_git_and_its_children),
		cmocka_unit_test_setup_teardown(no_repo_runs_in_place_in_the_jobs_file_directory,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(local_path_that_is_not_git_runs_in_place,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(missing_local_path_is_an_error, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(push_between_two_resolves_gives_the_new_commit,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(local_git_path_is_mirrored_and_pinned, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(refresh_interval_is_honoured, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        failed_fetch_uses_last_commit_with_a_warning_or_fails, gitfx_setup,
		        gitfx_teardown),
		cmocka_unit_test_setup_teardown(first_clone_failure_is_an_error_either_way,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(credentials_never_appear_in_messages, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(force_push_is_followed_and_noted, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(deleted_branch_runs_last_commit_or_fails_clearly,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(git_daemon_stopped_gives_last_commit_and_warning,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(checkout_is_read_only_and_made_once, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(two_concurrent_checkouts_build_once, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(submodules_are_checked_out, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(prune_removes_least_recently_used_but_never_held,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        checkout_race_loser_waits_for_the_build_not_the_winners_run, gitfx_setup,
		        gitfx_teardown),
		cmocka_unit_test_setup_teardown(build_lock_wait_gives_up_on_cancel_and_on_deadline,
		                                gitfx_setup, gitfx_teardown),
		cmocka_unit_test_setup_teardown(mirror_is_kept_while_a_clone_or_a_worktree_needs_it,
		                                gitfx_setup, gitfx_teardown),
	};

	/* Commits made by the tests need an identity, whatever the machine's git config. */
	setenv("GIT_AUTHOR_NAME", "eph test", 1);
	setenv("GIT_AUTHOR_EMAIL", "test@example.invalid", 1);
	setenv("GIT_COMMITTER_NAME", "eph test", 1);
	setenv("GIT_COMMITTER_EMAIL", "test@example.invalid", 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
