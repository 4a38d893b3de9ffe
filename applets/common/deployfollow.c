/* See deployfollow.h. */
#include "deployfollow.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

/* Polls of a quiet log start fast (a deploy often ends within a second)
 * and back off to POLL_MAX_MS; new output resets the pace. */
#define POLL_MIN_MS 20
#define POLL_MAX_MS 300

static void nap(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int final(const char *st)
{
	return st && (!strcmp(st, "done") || !strcmp(st, "error") || !strcmp(st, "cancelled"));
}

static int outcome(const struct cli *cli, struct client *cl, const char *id)
{
	char err[1024], path[128];
	struct proto_json *doc = NULL;
	struct buf raw = BUF_INIT;
	snprintf(path, sizeof(path), "/v1/deployments/%s", id);
	if (client_call(cl, "GET", path, NULL, NULL, &doc, &raw, err, sizeof(err)) < 0 || !doc) {
		buf_release(&raw);
		return cli_fail(cli, "%s", doc ? err : "bad reply from base");
	}
	const struct proto_jv *o = proto_json_root(doc);
	const char *st = proto_jv_get_str(o, "status");
	int rc = st && !strcmp(st, "done") ? 0 : 1;
	if (cli->json) {
		cli_print_json(raw.data, raw.len);
	} else if (!st || !final(st)) {
		fprintf(stderr, "deployment %s is %s (stage %s)\n", id, st ? st : "?",
			proto_jv_get_str(o, "stage") ? proto_jv_get_str(o, "stage") : "-");
	} else if (!rc) {
		int64_t port = 0, pid = 0;
		proto_jv_int(proto_jv_get(o, "port"), &port);
		proto_jv_int(proto_jv_get(o, "pid"), &pid);
		fprintf(stderr, "deployment %s done: %s is running", id,
			proto_jv_get_str(o, "service"));
		if (port)
			fprintf(stderr, " on 127.0.0.1:%lld", (long long)port);
		if (pid)
			fprintf(stderr, " (pid %lld)", (long long)pid);
		fputc('\n', stderr);
	} else {
		const char *why = proto_jv_get_str(o, "reason");
		fprintf(stderr, "deployment %s %s: %s\n", id, st, why ? why : "no reason given");
	}
	proto_json_free(doc);
	buf_release(&raw);
	return rc;
}

int deployfollow(const struct cli *cli, struct client *cl, const char *id, int follow)
{
	char err[1024], path[192];
	unsigned long long off = 0;
	int pace = POLL_MIN_MS;
	for (;;) {
		struct proto_json *doc = NULL;
		snprintf(path, sizeof(path), "/v1/deployments/%s/log?offset=%llu", id, off);
		if (client_call(cl, "GET", path, NULL, NULL, &doc, NULL, err, sizeof(err)) < 0 ||
		    !doc) {
			proto_json_free(doc);
			return cli_fail(cli, "%s", doc ? err : "bad reply from base");
		}
		const struct proto_jv *o = proto_json_root(doc);
		const char *data = proto_jv_get_str(o, "data");
		const char *st = proto_jv_get_str(o, "status");
		int64_t next = 0;
		proto_jv_int(proto_jv_get(o, "next"), &next);
		size_t n = data ? strlen(data) : 0;
		if (n && !cli->json) {
			cli_write(1, data, n);
		}
		int end = final(st) && (unsigned long long)next == off;
		off = next > 0 ? (unsigned long long)next : off;
		proto_json_free(doc);
		if (end || (!follow && !n))
			break;
		if (n) {
			pace = POLL_MIN_MS;
		} else {
			nap(pace);
			pace = pace * 2 > POLL_MAX_MS ? POLL_MAX_MS : pace * 2;
		}
	}
	return outcome(cli, cl, id);
}
