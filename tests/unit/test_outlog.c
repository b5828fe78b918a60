/* tests/unit/test_outlog.c: the agent's unit tests: output.log records (escaping, splitting,
 * partial lines), the command's fork/exec handshake (spawn.h) and the process tree's memory
 * (proctree.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/outlog.h"
#include "agent/proctree.h"
#include "agent/spawn.h"
#include "util/buf.h"
#include "util/xalloc.h"

extern char **environ;

#define T0 INT64_C(1795604885123) /* 2026-11-25T11:08:05.123Z */

#define ESC(lit) escaped(lit, sizeof(lit) - 1)

static char *
escaped(const void *p, size_t n)
{
	struct buf b;

	buf_init(&b, BUF_MAX_UNLIMITED);
	assert_int_equal(outlog_escape(&b, p, n), 0);
	(void)buf_cstr(&b);
	if (b.data == NULL)
		return calloc(1, 1);
	return buf_steal(&b);
}

static void
valid_utf8_is_copied_and_the_rest_escaped(void **state)
{
	char *s;

	(void)state;
	s = ESC("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\t");
	assert_string_equal(s, "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\t");
	free(s);
	s = ESC("a\\b\x01\x7f\xff\r");
	assert_string_equal(s, "a\\\\b\\x01\\x7f\\xff\\x0d");
	free(s);
	/* overlong, surrogate, above U+10FFFF, truncated: each byte escaped */
	s = ESC("\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82");
	assert_string_equal(s, "\\xc0\\xaf|\\xed\\xa0\\x80|\\xf4\\x90\\x80\\x80|\\xe2\\x82");
	free(s);
	s = ESC("a\0b");
	assert_string_equal(s, "a\\x00b");
	free(s);
}

static void
incomplete_utf8_tail_is_detected(void **state)
{
	(void)state;
	assert_int_equal(outlog_utf8_tail("ab", 2), 0);
	assert_int_equal(outlog_utf8_tail("a\xe2\x82", 3), 2);
	assert_int_equal(outlog_utf8_tail("a\xe2", 2), 1);
	assert_int_equal(outlog_utf8_tail("a\xe2\x82\xac", 4), 0);
	assert_int_equal(outlog_utf8_tail("a\xf0\x9f\x98", 4), 3);
	assert_int_equal(outlog_utf8_tail("a\xff", 2), 0);
	assert_int_equal(outlog_utf8_tail("\xe0\x80", 2), 0); /* can never be valid */
}

static void
timestamps_are_utc_with_milliseconds(void **state)
{
	char ts[25];

	(void)state;
	outlog_timestamp(T0, ts);
	assert_string_equal(ts, "2026-11-25T11:08:05.123Z");
	outlog_timestamp(INT64_C(1764007200000), ts);
	assert_string_equal(ts, "2025-11-24T18:00:00.000Z");
}

/* An outlog writing into a temporary file; returns what was written. */
struct sink {
	FILE *f;
	struct outlog o;
};

static void
sink_open(struct sink *s)
{
	s->f = tmpfile();
	assert_non_null(s->f);
	outlog_init(&s->o, fileno(s->f));
}

static char *
sink_text(struct sink *s, size_t *len)
{
	long n;
	char *p;

	assert_int_equal(outlog_sync(&s->o), 0);
	n = lseek(fileno(s->f), 0, SEEK_END);
	p = malloc((size_t)n + 1);
	assert_int_equal(pread(fileno(s->f), p, (size_t)n, 0), n);
	p[n] = '\0';
	*len = (size_t)n;
	return p;
}

static void
sink_close(struct sink *s)
{
	outlog_free(&s->o);
	fclose(s->f);
}

static void
complete_lines_become_records_of_their_stream(void **state)
{
	struct sink s;
	size_t n;
	char *t;

	(void)state;
	sink_open(&s);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "one\ntw", 6, T0, 0), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_ERR, "e\n\n", 3, T0, 0), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "o\n", 2, T0 + 1, 5), 0);
	t = sink_text(&s, &n);
	assert_string_equal(t, "2026-11-25T11:08:05.123Z out one\n"
	                       "2026-11-25T11:08:05.123Z err e\n"
	                       "2026-11-25T11:08:05.123Z err \n"
	                       "2026-11-25T11:08:05.124Z out two\n");
	free(t);
	sink_close(&s);
}

static void
partial_line_is_flushed_as_a_continuation_after_its_age(void **state)
{
	struct sink s;
	size_t n;
	char *t;

	(void)state;
	sink_open(&s);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0, 0, 1000), -1);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "wait", 4, T0, 100), 0);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0, 600, 1000), 500);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0 + 1000, 1100, 1000), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "ing\n", 4, T0 + 2000, 2100), 0);
	t = sink_text(&s, &n);
	assert_string_equal(t, "2026-11-25T11:08:06.123Z out+ wait\n"
	                       "2026-11-25T11:08:07.123Z out ing\n");
	free(t);
	sink_close(&s);
}

static void
partial_flush_keeps_an_incomplete_utf8_sequence_for_later(void **state)
{
	struct sink s;
	size_t n;
	char *t;

	(void)state;
	sink_open(&s);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_ERR, "x\xe2\x82", 3, T0, 0), 0);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_ERR, T0, 1000, 1000), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_ERR, "\xac", 1, T0, 1001), 0);
	/* end of stream: whatever is left goes out */
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_ERR, T0, 1002, 0), 0);
	t = sink_text(&s, &n);
	assert_string_equal(t, "2026-11-25T11:08:05.123Z err+ x\n"
	                       "2026-11-25T11:08:05.123Z err+ \xe2\x82\xac\n");
	free(t);
	sink_close(&s);
}

static void
long_line_is_split_at_the_cap_and_stays_reconstructible(void **state)
{
	size_t total = 3 * OUTLOG_LINE_MAX + 10, n, recs = 0, got = 0;
	char *in = malloc(total + 1), *t, *p;
	struct sink s;

	(void)state;
	memset(in, 'a', total);
	in[total] = '\n';
	sink_open(&s);
	/* fed in odd pieces, as pipes deliver it */
	for (size_t off = 0; off < total + 1; off += 7777) {
		size_t c = total + 1 - off < 7777 ? total + 1 - off : 7777;

		assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, in + off, c, T0, 0), 0);
	}
	t = sink_text(&s, &n);
	for (p = t; p < t + n; recs++) {
		char *nl = strchr(p, '\n');
		const char *tag = p + 25;
		bool cont = strncmp(tag, "out+ ", 5) == 0;
		char *text = p + 25 + (cont ? 5 : 4);

		assert_true(cont || strncmp(tag, "out ", 4) == 0);
		assert_true((size_t)(nl - text) <= OUTLOG_LINE_MAX);
		got += (size_t)(nl - text);
		/* only the last record ends the line */
		assert_int_equal(cont, nl + 1 < t + n);
		p = nl + 1;
	}
	assert_int_equal(recs, 4);
	assert_int_equal(got, total);
	free(t);
	free(in);
	sink_close(&s);
}

static void
split_never_cuts_a_utf8_sequence(void **state)
{
	size_t total = OUTLOG_LINE_MAX + 1, n;
	char *in = malloc(total), *t;
	struct sink s;

	(void)state;
	memset(in, 'a', total);
	/* a 2-byte sequence straddling the cap */
	in[OUTLOG_LINE_MAX - 1] = '\xc3';
	in[OUTLOG_LINE_MAX] = '\xa9';
	sink_open(&s);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, in, total, T0, 0), 0);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0, 0, 0), 0);
	t = sink_text(&s, &n);
	assert_null(strstr(t, "\\x"));
	assert_non_null(strstr(t, "out+ \xc3\xa9\n"));
	free(t);
	free(in);
	sink_close(&s);
}

/* ---- spawn: the release handshake */

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Waits up to MS for PID (our child) to end; -1 if it did not (it is then SIGKILLed). */
static int
wait_ms(pid_t pid, long ms)
{
	int st;

	for (long t = 0; t < ms; t += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		assert_int_equal(r, 0);
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	(void)waitpid(pid, &st, 0);
	return -1;
}

/* A hold that dies as an agent killed before releasing its child would: it tells the test
 * the child's pid on the pipe ARG, then exits. */
static int
die_in_hold(pid_t pid, void *arg)
{
	int fd = *(int *)arg;

	if (write(fd, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		_exit(3);
	_exit(0);
}

static void
child_exits_without_exec_when_its_parent_dies_before_releasing_it(void **state)
{
	char dir[] = "/tmp/eph-spawn-XXXXXX", *marker;
	pid_t helper, child = 0;
	int pp[2], st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	marker = xasprintf("%s/ran", dir);
	/* the orphaned child comes to us, so that we can see it end */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	assert_int_equal(pipe(pp), 0);
	helper = fork();
	assert_true(helper >= 0);
	if (helper == 0) {
		char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo ran > \"$0\"",
			         marker, NULL };
		struct spawn_opts o = { .argv = argv,
			                .envp = environ,
			                .path = "/bin/sh",
			                .setsid = true,
			                .hold = die_in_hold,
			                .arg = &pp[1] };
		struct spawn sp;

		close(pp[0]);
		if (spawn_start(&o, &sp) < 0)
			_exit(4);
		_exit(5); /* die_in_hold exits first */
	}
	close(pp[1]);
	assert_int_equal(read(pp[0], &child, sizeof(child)), sizeof(child));
	close(pp[0]);
	assert_int_equal(waitpid(helper, &st, 0), helper);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = wait_ms(child, 5000);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
	assert_int_not_equal(st, -1); /* it did not wait forever */
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 127);
	assert_int_equal(access(marker, F_OK), -1); /* and never ran */
	rmdir(dir);
	free(marker);
}

static int
record_hold(pid_t pid, void *arg)
{
	*(pid_t *)arg = pid;
	return 0;
}

/* Reads FD to EOF into a NUL-terminated string; caller frees. */
static char *
slurp(int fd)
{
	size_t len = 0, cap = 4096;
	char *b = malloc(cap);
	ssize_t n;

	assert_non_null(b);
	while ((n = read(fd, b + len, cap - len - 1)) > 0)
		len += (size_t)n;
	b[len] = '\0';
	return b;
}

static void
released_child_execs_with_signals_default_and_unblocked(void **state)
{
	char *argv[] = { (char *)"/bin/grep", (char *)"-E",
		         (char *)"^Sig(Blk|Ign):", (char *)"/proc/self/status", NULL };
	struct spawn_opts o = { .argv = argv, .envp = environ, .path = "/bin/grep" };
	sigset_t usr1, before, after;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	pid_t held = 0;
	struct spawn sp;
	char *text;
	int st;

	(void)state;
	o.hold = record_hold;
	o.arg = &held;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &before), 0);
	assert_int_equal(sigaction(SIGUSR2, &ign, &old), 0);
	assert_int_equal(spawn_start(&o, &sp), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, NULL, &after), 0);
	assert_int_equal(sigaction(SIGUSR2, &old, NULL), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &before, NULL), 0);
	assert_true(sigismember(&after, SIGUSR1)); /* the parent's mask is back as it was */
	assert_false(sigismember(&after, SIGTERM));
	assert_int_equal(sp.stage, SPAWN_OK);
	assert_int_equal(held, sp.pid);
	text = slurp(sp.out);
	close(sp.out);
	close(sp.err);
	assert_int_equal(waitpid(sp.pid, &st, 0), sp.pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_string_equal(text, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	free(text);
}

/* ---- proctree */

#define SHARED_MIB 64

static void
pss_counts_pages_shared_after_fork_once(void **state)
{
	size_t n = (size_t)SHARED_MIB << 20;
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t kids[3];
	struct proctree t;
	int hold[2];

	(void)state;
	assert_true(p != MAP_FAILED);
	memset(p, 1, n);
	assert_int_equal(pipe(hold), 0);
	for (int i = 0; i < 3; i++) {
		char c;

		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			close(hold[1]);
			_exit(read(hold[0], &c, 1) == 0 ? 0 : 1); /* until the test is done */
		}
	}
	close(hold[0]);
	assert_int_equal(proctree_scan(getpid(), true, &t), 0);
	close(hold[1]);
	for (int i = 0; i < 3; i++)
		assert_int_equal(waitpid(kids[i], NULL, 0), kids[i]);
	munmap(p, n);
	assert_int_equal(t.n, 3);
	/* each child maps the region: RSS counts it 3 times; PSS a quarter of it per child (the
	 * test process shares it too) */
	assert_true(t.rss >= 3 * n);
	assert_true(t.pss >= 3 * n / 4 - (n >> 4));
	assert_true(t.pss < t.rss / 2);
	proctree_free(&t);
}

#define CHAIN 40

static void
descendants_are_found_at_any_depth(void **state)
{
	struct proctree t;
	int hold[2], ready[2], st;
	pid_t top;
	char c;

	(void)state;
	assert_int_equal(pipe(hold), 0);
	assert_int_equal(pipe(ready), 0);
	top = fork();
	assert_true(top >= 0);
	if (top == 0) {
		/* a chain: each process forks the next, the last says it is there */
		close(hold[1]);
		close(ready[0]);
		for (int i = 1; i < CHAIN; i++) {
			pid_t k = fork();

			if (k < 0)
				_exit(1);
			if (k > 0) {
				close(ready[1]);
				_exit(read(hold[0], &c, 1) == 0 && waitpid(k, NULL, 0) == k ? 0
				                                                            : 1);
			}
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		_exit(read(hold[0], &c, 1) == 0 ? 0 : 1);
	}
	close(hold[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(proctree_scan(getpid(), false, &t), 0);
	close(hold[1]);
	assert_int_equal(waitpid(top, &st, 0), top);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(t.n, CHAIN);
	assert_int_equal(t.pss, 0); /* not asked for */
	assert_true(t.rss > 0);
	proctree_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_utf8_is_copied_and_the_rest_escaped),
		cmocka_unit_test(incomplete_utf8_tail_is_detected),
		cmocka_unit_test(timestamps_are_utc_with_milliseconds),
		cmocka_unit_test(complete_lines_become_records_of_their_stream),
		cmocka_unit_test(partial_line_is_flushed_as_a_continuation_after_its_age),
		cmocka_unit_test(partial_flush_keeps_an_incomplete_utf8_sequence_for_later),
		cmocka_unit_test(long_line_is_split_at_the_cap_and_stays_reconstructible),
		cmocka_unit_test(split_never_cuts_a_utf8_sequence),
		cmocka_unit_test(child_exits_without_exec_when_its_parent_dies_before_releasing_it),
		cmocka_unit_test(released_child_execs_with_signals_default_and_unblocked),
		cmocka_unit_test(pss_counts_pages_shared_after_fork_once),
		cmocka_unit_test(descendants_are_found_at_any_depth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
