#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "harness.h"

static void slurp(const char *path, struct buf *b)
{
	char err[256];
	buf_reset(b);
	CHECK_INT(buf_read_file(b, path, 1 << 20, err, sizeof(err)), 0);
}

TEST(log_json_lines_to_file)
{
	char err[256];
	log_set_stderr(0);
	log_set_role("agent");
	CHECK_INT(log_open_file("sub/dir/app.log", err, sizeof(err)), 0);
	log_info("session", "connected", "instance", "i-1", "note", "a\"b\nc", "none", NULL, NULL);
	log_debug("session", "dropped below level", NULL);
	struct buf b = BUF_INIT;
	slurp("sub/dir/app.log", &b);
	CHECK(strstr(b.data, "\"level\":\"info\",\"role\":\"agent\",\"mod\":\"session\","
			     "\"msg\":\"connected\",\"instance\":\"i-1\","
			     "\"note\":\"a\\\"b\\nc\",\"none\":null}\n") != NULL);
	CHECK(strstr(b.data, "dropped") == NULL);
	CHECK(b.data[0] == '{' && strstr(b.data, "\"ts\":\"20") != NULL);
	struct stat st;
	CHECK_INT(stat("sub/dir/app.log", &st), 0);
	CHECK_INT(st.st_mode & 0777, 0640);
	/* rotation: rename, reopen, the next line goes to the new file */
	CHECK_INT(rename("sub/dir/app.log", "sub/dir/app.log.1"), 0);
	CHECK_INT(log_reopen(), 0);
	log_warn("x", "after rotation", NULL);
	slurp("sub/dir/app.log", &b);
	CHECK(strstr(b.data, "after rotation") != NULL);
	log_close();
	buf_release(&b);
}

TEST(log_stderr_escapes_control_characters)
{
	int fd = open("err", O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(dup2(fd, 2) == 2);
	log_set_stderr(1);
	log_set_level(LOG_LVL_DEBUG);
	log_error("api", "bad\nline", "k", "v\r", NULL);
	struct buf b = BUF_INIT;
	slurp("err", &b);
	CHECK(strstr(b.data, " error api: bad\\x0aline k=v\\x0d\n") != NULL);
	buf_release(&b);
}

TEST(log_level_names)
{
	enum log_level l;
	CHECK_INT(log_level_parse("warn", &l), 0);
	CHECK_INT(l, LOG_LVL_WARN);
	CHECK_INT(log_level_parse("loud", &l), -1);
	char err[256];
	CHECK_INT(log_open_file("/proc/nonexistent/x.log", err, sizeof(err)), -1);
	CHECK(strncmp(err, "open log file '/proc/nonexistent/x.log': ", 41) == 0);
}
