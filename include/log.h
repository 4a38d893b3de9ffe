/* log: human lines to stderr and structured JSON lines to a file.
 *
 * Log settings are the one global state dployr allows (STYLE.md). A line
 * has a level, a module name, a message and optional key=value fields:
 *
 *   log_info("session", "connected", "instance", id, "addr", addr, NULL);
 *
 * stderr:  2026-11-22T01:25:00.123Z info session: connected instance=i-1 addr=...
 * file:    {"ts":"2026-11-22T01:25:00.123Z","level":"info","role":"agent",
 *           "mod":"session","msg":"connected","instance":"i-1","addr":"..."}
 *
 * Never pass a secret (token, key, secret value) as a message or field:
 * nothing here can tell it apart from other text. Control characters in
 * stderr lines are escaped so a logged value cannot forge a line.
 */
#ifndef DPLOYR_LOG_H
#define DPLOYR_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR, LOG_LVL_OFF };

/* Lines below level are dropped (default LOG_LVL_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", "warn", "error", "off" -> 0; else -1. */
int log_level_parse(const char *name, enum log_level *out);
/* Role written into JSON lines ("base", "agent"); a static string. */
void log_set_role(const char *role);
/* Human lines to stderr on or off (default on). */
void log_set_stderr(int on);
/* Append JSON lines to path (created 0640 with missing parent directories
 * 0750). Replaces an earlier file. On failure writes a reason to err. */
int log_open_file(const char *path, char *err, size_t errlen);
/* Reopen the file at the same path (after rotation). */
int log_reopen(void);
void log_close(void);

/* fields: alternating key, value strings, ended by NULL. A NULL value is
 * written as JSON null. */
void log_write(enum log_level level, const char *mod, const char *msg, ...)
	__attribute__((sentinel));

#define log_debug(mod, ...) log_write(LOG_LVL_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_write(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_write(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_write(LOG_LVL_ERROR, mod, __VA_ARGS__)

#endif
