/* tests/unit/test_remote.c: hosts as people write them, POSIX sh quoting, ssh's argv and
 * environment, known_hosts entries (hashed ones made by ssh-keygen -H), file modes, and how
 * ssh's failures read. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "remote/remote.h"
#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

static const struct diag_pos at = { "jobs.yaml", 7, 15 };

static void
host_ok(const char *text, const char *user, const char *addr, int port)
{
	struct remote_host h;
	struct diag d;

	diag_init(&d);
	assert_int_equal(remote_host_parse(text, at, &h, &d), 0);
	assert_int_equal(diag_nerrors(&d), 0);
	if (user == NULL)
		assert_null(h.user);
	else
		assert_string_equal(h.user, user);
	assert_string_equal(h.addr, addr);
	assert_int_equal(h.port, port);
	remote_host_clear(&h);
	diag_free(&d);
}

/* TEXT is refused; the message (with its position) holds WHAT. */
static void
host_bad(const char *text, const char *what, int col)
{
	struct remote_host h;
	struct diag d;
	char *msg;

	diag_init(&d);
	assert_int_equal(remote_host_parse(text, at, &h, &d), -EINVAL);
	assert_null(h.addr);
	assert_null(h.user);
	assert_true(diag_nerrors(&d) >= 1);
	msg = diag_format(&d, 0);
	if (strstr(msg, what) == NULL)
		fail_msg("\"%s\": \"%s\" has no \"%s\"", text, msg, what);
	if (col > 0) {
		char *want = xasprintf("jobs.yaml:7:%d: ", col);

		if (strncmp(msg, want, strlen(want)) != 0)
			fail_msg("\"%s\": \"%s\" is not at %s", text, msg, want);
		free(want);
	}
	free(msg);
	diag_free(&d);
}

static void
hosts_are_user_addr_port_with_ipv6_in_brackets(void **state)
{
	(void)state;
	host_ok("10.0.0.5", NULL, "10.0.0.5", 22);
	host_ok("eph@10.0.0.5", "eph", "10.0.0.5", 22);
	host_ok("eph@10.0.0.6:2222", "eph", "10.0.0.6", 2222);
	host_ok("build-1.example.org", NULL, "build-1.example.org", 22);
	host_ok("eph@[fd00::5]:2222", "eph", "fd00::5", 2222);
	host_ok("[::1]", NULL, "::1", 22);
	host_ok("a.b_c@h:65535", "a.b_c", "h", 65535);
}

static void
bad_hosts_say_where_and_why(void **state)
{
	(void)state;
	host_bad("", "host is empty", 15);
	host_bad("eph@", "no address", 19);
	host_bad("fd00::5", "an IPv6 address goes in brackets", 15);
	host_bad("eph@fd00::5:22", "an IPv6 address goes in brackets", 19);
	host_bad("[fd00::5", "no ']' after '['", 15);
	host_bad("[10.0.0.1]:22", "not an IPv6 address", 16);
	host_bad("[::1]x", "only \":port\" may follow ']'", 20);
	host_bad("h:0", "port must be a number from 1 to 65535", 17);
	host_bad("h:65536", "port must be a number", 17);
	host_bad("h:22x", "port must be a number", 17);
	host_bad("h:", "port must be a number", 17);
	host_bad("-oProxyCommand=x", "not start with '-'", 15);
	host_bad("-x@h", "user name", 15);
	host_bad("e ph@h", "user name", 15);
	host_bad("h;rm", "the address may hold only", 15);
}

static void
hosts_print_as_written_and_as_known_hosts_names_them(void **state)
{
	struct remote_host h = { 0 };
	char *s;

	(void)state;
	h.addr = (char *)"fd00::5";
	h.user = (char *)"eph";
	h.port = 2222;
	s = remote_host_str(&h);
	assert_string_equal(s, "eph@[fd00::5]:2222");
	free(s);
	s = remote_host_known_name(&h);
	assert_string_equal(s, "[fd00::5]:2222");
	free(s);
	h.port = 22;
	h.user = NULL;
	s = remote_host_str(&h); /* as it parses back */
	assert_string_equal(s, "[fd00::5]");
	free(s);
	s = remote_host_known_name(&h);
	assert_string_equal(s, "fd00::5");
	free(s);
}

/* Q, given to sh -c 'printf %s Q', prints S back. */
static void
quote_round_trip(const char *s)
{
	char *q = remote_quote(s), *cmd = xasprintf("printf %%s %s", q);
	const char *argv[] = { "sh", "-c", cmd, NULL };
	char buf[4096];
	int fds[2];
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		execvp("sh", (char **)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	buf[got] = '\0';
	assert_string_equal(buf, s);
	free(cmd);
	free(q);
}

static void
quoting_survives_a_real_shell(void **state)
{
	char *q;

	(void)state;
	q = remote_quote("it's");
	assert_string_equal(q, "'it'\\''s'");
	free(q);
	q = remote_quote("");
	assert_string_equal(q, "''");
	free(q);
	quote_round_trip("plain");
	quote_round_trip("");
	quote_round_trip("it's a 'quote'");
	quote_round_trip("$HOME `id` $(id) \"x\" \\ ; | & * ? ~ # \n newline");
	q = remote_quote_path("~/.ephemeron/bin");
	assert_string_equal(q, "\"$HOME\"/'.ephemeron/bin'");
	free(q);
	q = remote_quote_path("/srv/it's");
	assert_string_equal(q, "'/srv/it'\\''s'");
	free(q);
}

static int
argv_index(char **v, const char *s)
{
	for (int i = 0; v[i] != NULL; i++)
		if (strcmp(v[i], s) == 0)
			return i;
	return -1;
}

static void
argv_pins_everything_and_ends_with_the_host(void **state)
{
	struct remote_ssh s = {
		.identity_file = "/etc/ephemeron/id_ed25519",
		.known_hosts = "/etc/ephemeron/known_hosts",
		.control_dir = "/var/lib/ephemeron/ssh",
		.connect_timeout = 7,
	};
	struct remote_host h = { .user = (char *)"eph", .addr = (char *)"fd00::5", .port = 2222 };
	char **v = remote_argv(&s, &h, NULL, "echo 'x'");
	int n = 0, dd;

	(void)state;
	while (v[n] != NULL)
		n++;
	assert_string_equal(v[0], "ssh");
	assert_string_equal(v[1], "-F");
	assert_string_equal(v[2], "/dev/null");
	assert_true(argv_index(v, "BatchMode=yes") > 0);
	assert_true(argv_index(v, "StrictHostKeyChecking=yes") > 0);
	assert_true(argv_index(v, "UserKnownHostsFile=/etc/ephemeron/known_hosts") > 0);
	assert_true(argv_index(v, "GlobalKnownHostsFile=/dev/null") > 0);
	assert_true(argv_index(v, "IdentitiesOnly=yes") > 0);
	assert_true(argv_index(v, "IdentityAgent=none") > 0);
	assert_true(argv_index(v, "LogLevel=ERROR") > 0);
	assert_string_equal(v[argv_index(v, "-i") + 1], "/etc/ephemeron/id_ed25519");
	assert_true(argv_index(v, "ConnectTimeout=7") > 0);
	assert_true(argv_index(v, "ServerAliveInterval=5") > 0);
	assert_true(argv_index(v, "ServerAliveCountMax=3") > 0);
	assert_true(argv_index(v, "ControlMaster=auto") > 0);
	assert_true(argv_index(v, "ControlPath=/var/lib/ephemeron/ssh/%C") > 0);
	assert_true(argv_index(v, "ControlPersist=600") > 0);
	assert_string_equal(v[argv_index(v, "-p") + 1], "2222");
	assert_string_equal(v[argv_index(v, "-l") + 1], "eph");
	dd = argv_index(v, "--");
	assert_int_equal(dd, n - 3);
	assert_string_equal(v[n - 2], "fd00::5");
	assert_string_equal(v[n - 1], "echo 'x'");
	remote_argv_free(v);

	s.control_dir = NULL;
	s.identity_file = NULL;
	h.user = NULL;
	v = remote_argv(&s, &h, "exit", "ignored");
	n = 0;
	while (v[n] != NULL)
		n++;
	assert_true(argv_index(v, "ControlMaster=no") > 0);
	assert_true(argv_index(v, "IdentityFile=none") > 0);
	assert_int_equal(argv_index(v, "-l"), -1);
	assert_string_equal(v[argv_index(v, "-O") + 1], "exit");
	assert_string_equal(v[n - 1], "fd00::5");
	remote_argv_free(v);
}

static void
env_has_no_agent(void **state)
{
	char e0[] = "PATH=/usr/bin", e1[] = "SSH_AUTH_SOCK=/tmp/agent", e2[] = "HOME=/root",
	     e3[] = "SSH_ASKPASS=/bin/x", e4[] = "SSH_AUTH_SOCKET=kept";
	char *env[] = { e0, e1, e2, e3, e4, NULL };
	char **v = remote_env(env);

	(void)state;
	assert_string_equal(v[0], "PATH=/usr/bin");
	assert_string_equal(v[1], "HOME=/root");
	assert_string_equal(v[2], "SSH_AUTH_SOCKET=kept");
	assert_null(v[3]);
	free(v);
}

static bool
known(const char *text, const char *host)
{
	struct remote_host h;
	struct diag d;
	bool yes;

	diag_init(&d);
	assert_int_equal(remote_host_parse(host, at, &h, &d), 0);
	yes = remote_known_match(text, strlen(text), &h);
	remote_host_clear(&h);
	diag_free(&d);
	return yes;
}

static void
known_hosts_plain_entries_match_as_ssh_does(void **state)
{
	const char *k = "# a comment\n"
	                "\n"
	                "10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK\n"
	                "[10.0.0.6]:2222,other ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK\n"
	                "  *.build.example ssh-rsa AAAAB3\n"
	                "*.example,!bad.example ssh-rsa AAAAB3\n"
	                "@revoked 10.0.0.9 ssh-rsa AAAAB3\n"
	                "@cert-authority *.ca.example ssh-rsa AAAAB3\n"
	                "nokey.test\n"
	                "[fd00::5]:2222 ssh-ed25519 AAAA\n"
	                "Upper.Example ssh-ed25519 AAAA";

	(void)state;
	assert_true(known(k, "10.0.0.5"));
	assert_true(known(k, "eph@10.0.0.5"));
	assert_false(known(k, "10.0.0.5:2222")); /* another port is another entry */
	assert_true(known(k, "10.0.0.6:2222"));
	assert_false(known(k, "10.0.0.6"));
	assert_true(known(k, "other"));
	assert_false(known(k, "other:2222"));
	assert_true(known(k, "a.build.example"));
	assert_true(known(k, "good.example"));
	assert_false(known(k, "bad.example"));
	assert_false(known(k, "10.0.0.9"));
	assert_true(known(k, "h.ca.example"));
	assert_false(known(k, "nokey.test"));
	assert_true(known(k, "eph@[fd00::5]:2222"));
	assert_false(known(k, "[fd00::5]"));
	assert_true(known(k, "upper.example"));
	assert_false(known(k, "10.0.0.50"));
	assert_false(known("", "10.0.0.5"));
}

static void
run(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
}

/* known_hosts hashed by OpenSSH itself (ssh-keygen -H): |1|salt|HMAC-SHA1(salt, name). */
static void
known_hosts_hashed_entries_match(void **state)
{
	char dir[] = "/tmp/test_remote.XXXXXX", *path, *cmd;
	struct remote_host h;
	struct diag d;
	struct buf b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/known_hosts", dir);
	cmd = xasprintf("ssh-keygen -q -t ed25519 -N '' -f %s/key && "
	                "{ printf '10.253.1.2 '; cat %s/key.pub; printf '[fd00::5]:2222 '; "
	                "cat %s/key.pub; } >%s && ssh-keygen -q -H -f %s >/dev/null 2>&1",
	                dir, dir, dir, path, path);
	run(cmd);
	free(cmd);
	buf_init(&b, REMOTE_MAX_KNOWN);
	assert_int_equal(fsio_read_file(path, &b), 0);
	assert_non_null(strstr(buf_cstr(&b), "|1|")); /* really hashed */
	assert_null(strstr(buf_cstr(&b), "10.253.1.2"));
	assert_true(known(buf_cstr(&b), "10.253.1.2"));
	assert_true(known(buf_cstr(&b), "eph@[fd00::5]:2222"));
	assert_false(known(buf_cstr(&b), "10.253.1.3"));
	assert_false(known(buf_cstr(&b), "10.253.1.2:2222"));
	buf_free(&b);

	diag_init(&d);
	assert_int_equal(remote_host_parse("10.253.1.2", at, &h, &d), 0);
	assert_int_equal(remote_known_has(path, &h), 1);
	remote_host_clear(&h);
	assert_int_equal(remote_host_parse("10.253.1.7", at, &h, &d), 0);
	assert_int_equal(remote_known_has(path, &h), 0);
	cmd = xasprintf("%s/none", dir);
	assert_int_equal(remote_known_has(cmd, &h), -ENOENT);
	free(cmd);
	{
		struct remote_ssh s = { .known_hosts = path };
		struct remote_host ok;
		char *msg;

		assert_int_equal(remote_check_host(&s, &h, at, &d), -EINVAL);
		assert_int_equal(diag_nerrors(&d), 1);
		msg = diag_format(&d, 0);
		assert_non_null(strstr(msg, "jobs.yaml:7:15: host 10.253.1.7 has no entry in "
		                            "known_hosts "));
		free(msg);
		assert_int_equal(remote_host_parse("eph@[fd00::5]:2222", at, &ok, &d), 0);
		assert_int_equal(remote_check_host(&s, &ok, at, &d), 0);
		assert_int_equal(diag_nerrors(&d), 1);
		remote_host_clear(&ok);
	}
	remote_host_clear(&h);
	diag_free(&d);
	cmd = xasprintf("rm -rf %s", dir);
	run(cmd);
	free(cmd);
	free(path);
}

static void
files_others_can_write_or_read_are_refused(void **state)
{
	char dir[] = "/tmp/test_remote.XXXXXX", *kh, *id, *msg;
	struct remote_ssh s = { 0 };
	struct diag d;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	kh = xasprintf("%s/known_hosts", dir);
	id = xasprintf("%s/id", dir);
	f = fopen(kh, "w");
	fclose(f);
	f = fopen(id, "w");
	fclose(f);
	s.known_hosts = kh;
	s.identity_file = id;
	s.control_dir = "/var/lib/ephemeron/ssh";

	chmod(kh, 0644);
	chmod(id, 0600);
	diag_init(&d);
	assert_int_equal(remote_check_files(&s, at, &d), 0);
	diag_free(&d);

	chmod(kh, 0666);
	chmod(id, 0640);
	diag_init(&d);
	assert_int_equal(remote_check_files(&s, at, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 2);
	msg = diag_joined(&d, "");
	assert_non_null(strstr(msg, "can be written by others (mode 0666)"));
	assert_non_null(strstr(msg, "can be read or written by others (mode 0640)"));
	free(msg);
	diag_free(&d);

	s.known_hosts = NULL;
	s.identity_file = "/nonexistent/id";
	s.control_dir = "/a/state/directory/far/too/deep/for/a/socket/path/to/fit";
	diag_init(&d);
	assert_int_equal(remote_check_files(&s, at, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 3);
	msg = diag_joined(&d, "");
	assert_non_null(strstr(msg, "known_hosts is required"));
	assert_non_null(strstr(msg, "/nonexistent/id: No such file or directory"));
	assert_non_null(strstr(msg, "would not fit a socket address"));
	free(msg);
	diag_free(&d);
	unlink(kh);
	unlink(id);
	rmdir(dir);
	free(kh);
	free(id);
}

static void
ssh_failures_are_told_apart(void **state)
{
	const char *changed = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
	                      "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
	                      "The fingerprint for the ED25519 key sent by the remote host is\r\n"
	                      "SHA256:n4Wq5c8pPOq1mG0VbJmWb0Yc0K3yF3zB6H0e9x1Q2zE.\r\n"
	                      "Host key verification failed.\r\n";
	char *fp, *why;

	(void)state;
	assert_int_equal(remote_classify(0, ""), REMOTE_OK);
	assert_int_equal(remote_classify(3, "Permission denied"), REMOTE_STATUS);
	assert_int_equal(remote_classify(255, changed), REMOTE_HOST_KEY);
	assert_int_equal(remote_classify(255, "No ED25519 host key is known for 10.0.0.5 and you "
	                                      "have requested strict checking.\r\nHost key "
	                                      "verification failed.\r\n"),
	                 REMOTE_HOST_KEY);
	assert_int_equal(remote_classify(255, "eph@10.0.0.5: Permission denied (publickey).\r\n"),
	                 REMOTE_AUTH);
	assert_int_equal(remote_classify(255, "ssh: connect to host 10.0.0.5 port 22: Connection "
	                                      "timed out\r\n"),
	                 REMOTE_TIMEOUT);
	assert_int_equal(remote_classify(255, "ssh: connect to host 10.0.0.5 port 22: Connection "
	                                      "refused\r\n"),
	                 REMOTE_UNREACHABLE);
	assert_int_equal(remote_classify(255, "something else\n"), REMOTE_SSH);
	fp = remote_fingerprint(changed);
	assert_string_equal(fp, "SHA256:n4Wq5c8pPOq1mG0VbJmWb0Yc0K3yF3zB6H0e9x1Q2zE");
	free(fp);
	assert_null(remote_fingerprint("no key here"));
	why = remote_why("eph@10.0.0.5", REMOTE_AUTH, 255,
	                 "Warning: x\neph@10.0.0.5: Permission denied (publickey).\r\n\n");
	assert_string_equal(why, "eph@10.0.0.5 refused our key: eph@10.0.0.5: Permission denied "
	                         "(publickey).");
	free(why);
	{
		char err[] = "ControlSocket /s/0123 already exists, disabling multiplexing\r\n"
		             "boom\n"
		             "ControlSocket /s/0123 already exists, disabling multiplexing";

		assert_int_equal(remote_strip_noise(err), 5);
		assert_string_equal(err, "boom\n");
	}
	why = remote_why("h", REMOTE_STATUS, 3, "");
	assert_string_equal(why, "h: the command exited with status 3");
	free(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hosts_are_user_addr_port_with_ipv6_in_brackets),
		cmocka_unit_test(bad_hosts_say_where_and_why),
		cmocka_unit_test(hosts_print_as_written_and_as_known_hosts_names_them),
		cmocka_unit_test(quoting_survives_a_real_shell),
		cmocka_unit_test(argv_pins_everything_and_ends_with_the_host),
		cmocka_unit_test(env_has_no_agent),
		cmocka_unit_test(known_hosts_plain_entries_match_as_ssh_does),
		cmocka_unit_test(known_hosts_hashed_entries_match),
		cmocka_unit_test(files_others_can_write_or_read_are_refused),
		cmocka_unit_test(ssh_failures_are_told_apart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
