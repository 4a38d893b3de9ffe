/* table: text tables with aligned columns, for the CLI's listings.
 *
 *   struct table *t = table_new(3, "NAME", "STATE", "LAST SEEN");
 *   table_add(t, "web-1", "online", "3s ago");
 *   table_print(t, stdout);
 *   table_free(t);
 *
 * prints
 *
 *   NAME   STATE   LAST SEEN
 *   web-1  online  3s ago
 *
 * Columns are separated by two spaces and padded to their widest cell
 * (counted in UTF-8 characters); the last column is not padded. Cells are
 * copied. Text from the network can hold terminal escapes: every control
 * character in a cell is printed as '?', and an empty or NULL cell as "-".
 */
#ifndef DPLOYR_TABLE_H
#define DPLOYR_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table;

/* ncols (1..32) column headers follow. */
struct table *table_new(size_t ncols, ...);
void table_free(struct table *t);
/* One row: exactly ncols cells (const char *, NULL allowed). */
void table_add(struct table *t, ...);
size_t table_rows(const struct table *t);
/* Print the header and the rows. */
void table_print(const struct table *t, FILE *f);

#endif
