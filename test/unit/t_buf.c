#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "xalloc.h"

TEST(buf_starts_empty_and_terminated)
{
	struct buf b = BUF_INIT;
	CHECK_INT(b.len, 0);
	CHECK_STR(b.data, "");
	buf_release(&b);
	buf_release(&b);
}

TEST(buf_appends_and_formats)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "hello");
	buf_putc(&b, ' ');
	buf_printf(&b, "%s-%d", "world", 42);
	CHECK_STR(b.data, "hello world-42");
	CHECK_INT(b.len, 14);
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%04d", i);
	CHECK_INT(b.len, 14 + 4000);
	CHECK(memcmp(b.data + b.len - 4, "0999", 4) == 0);
	CHECK_INT(b.data[b.len], 0);
	buf_release(&b);
}

TEST(buf_consume_and_truncate)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "abcdef");
	buf_consume(&b, 2);
	CHECK_STR(b.data, "cdef");
	buf_truncate(&b, 2);
	CHECK_STR(b.data, "cd");
	buf_consume(&b, 10);
	CHECK_STR(b.data, "");
	buf_release(&b);
}

TEST(buf_detach_hands_over)
{
	struct buf b = BUF_INIT;
	size_t len;
	char *s = buf_detach(&b, &len);
	CHECK_STR(s, "");
	free(s);
	buf_add(&b, "a\0b", 3);
	s = buf_detach(&b, &len);
	CHECK_INT(len, 3);
	CHECK(memcmp(s, "a\0b", 4) == 0);
	CHECK_INT(b.len, 0);
	free(s);
}

TEST(buf_json_escapes_and_repairs_utf8)
{
	struct buf b = BUF_INIT;
	buf_json_str(&b, "a\"b\\c\n\x01\x7f", 8);
	CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\\u007f\"");
	buf_reset(&b);
	buf_json_cstr(&b, "caf\xc3\xa9 \xe2\x82\xac");
	CHECK_STR(b.data, "\"caf\xc3\xa9 \xe2\x82\xac\"");
	buf_reset(&b);
	/* overlong, lone continuation, surrogate, truncated */
	buf_json_str(&b, "\xc0\xaf\x80\xed\xa0\x80\xe2\x82", 8);
	CHECK_STR(b.data, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
	buf_reset(&b);
	buf_json_cstr(&b, NULL);
	CHECK_STR(b.data, "null");
	buf_release(&b);
}

TEST(buf_read_file_limits)
{
	int fd = open("f", O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	char block[1000];
	memset(block, 'x', sizeof(block));
	for (int i = 0; i < 100; i++)
		CHECK(write(fd, block, sizeof(block)) == (ssize_t)sizeof(block));
	close(fd);
	struct buf b = BUF_INIT;
	char err[256];
	CHECK_INT(buf_read_file(&b, "f", 100000, err, sizeof(err)), 0);
	CHECK_INT(b.len, 100000);
	buf_reset(&b);
	CHECK_INT(buf_read_file(&b, "f", 99999, err, sizeof(err)), -1);
	CHECK_STR(err, "read 'f': larger than 99999 bytes");
	buf_reset(&b);
	CHECK_INT(buf_read_file(&b, "missing", 10, err, sizeof(err)), -1);
	CHECK_STR(err, "read 'missing': No such file or directory");
	CHECK_INT(buf_read_file(&b, ".", 10, err, sizeof(err)), -1);
	CHECK_STR(err, "read '.': is a directory");
	buf_release(&b);
}
