/* suggest: "did you mean" for misspelt names. */
#ifndef DPLOYR_SUGGEST_H
#define DPLOYR_SUGGEST_H

#include <stddef.h>

/* Optimal string alignment distance (edits, with adjacent transpositions
 * counting one), case-sensitive; strings longer than 64 bytes count as far. */
size_t suggest_distance(const char *a, const char *b);

/* The candidate closest to word, if close enough to be a likely typo
 * (distance at most 1 for words up to 4 bytes, else at most a third of the
 * length, at most 3), else NULL. Ties go to the earlier candidate. The
 * result points into cands. */
const char *suggest_closest(const char *word, const char *const *cands, size_t n);

#endif
