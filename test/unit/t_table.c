#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char *render(const struct table *t)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	CHECK(f != NULL);
	table_print(t, f);
	fclose(f);
	return text;
}

TEST(table_aligns_columns_and_leaves_the_last_unpadded)
{
	struct table *t = table_new(3, "NAME", "STATE", "LAST SEEN");
	CHECK_INT(table_rows(t), 0);
	table_add(t, "web-1", "online", "3s ago");
	table_add(t, "db", NULL, "");
	CHECK_INT(table_rows(t), 2);
	char *s = render(t);
	CHECK_STR(s, "NAME   STATE   LAST SEEN\n"
		     "web-1  online  3s ago\n"
		     "db     -       -\n");
	free(s);
	table_free(t);
	table_free(NULL);
}

TEST(table_neutralises_control_characters_and_counts_utf8)
{
	struct table *t = table_new(2, "A", "B");
	table_add(t, "\x1b[31mred", "x\ny");
	table_add(t, "\xc3\xa9t\xc3\xa9", "z"); /* "été": 3 characters, 5 bytes */
	char *s = render(t);
	CHECK_STR(s, "A         B\n"
		     "?[31mred  x?y\n"
		     "\xc3\xa9t\xc3\xa9       z\n");
	CHECK(strchr(s, 0x1b) == NULL);
	free(s);
	table_free(t);
}
