/* libFuzzer target: api_handle on arbitrary requests (method selector,
 * path, token choice and body from the input) against one store with an
 * owner token, a CA and an instance. Every answer must be a known status
 * with a JSON body (or the CA PEM, or a stream upgrade). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "deploys.h"
#include "fleet.h"
#include "proto.h"
#include "secrets.h"
#include "svcstatus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const dbs[] = {FLEET_DBS,   QUEUE_DBS,     AUTH_DBS, DEPLOYS_DBS,
				  SECRETS_DBS, SVCSTATUS_DBS, "meta",   NULL};

struct fz {
	struct api_config cfg;
	struct pki_key *ca_key;
	char *ca_pem;
	char auth[128];
};

static int online(void *arg, const char *id)
{
	(void)arg;
	return id[2] < '8'; /* half of the instances count as online */
}

static char dir[] = "/tmp/fuzz_api.XXXXXX";

static void cleanup(void)
{
	char p[64];
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
}

static struct fz *setup(void)
{
	static struct fz f; /* the fuzzer's one fixture, built once */
	static int done;
	char err[256];
	if (done)
		return &f;
	done = 1;
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	f.cfg.store = store_open(dir, dbs, 0, 0, err, sizeof err);
	if (!f.cfg.store)
		abort();
	f.cfg.rng = crypt_rng_new();
	f.ca_key = pki_key_generate(f.cfg.rng);
	struct pki_cert_opts o = {0};
	o.cn = "fuzz CA";
	o.not_before = time(NULL) - 60;
	o.not_after = time(NULL) + 86400;
	f.ca_pem = pki_ca_create(f.ca_key, &o, f.cfg.rng, err, sizeof err);
	f.cfg.ca_pem = f.ca_pem;
	f.cfg.ca_key = f.ca_key;
	f.cfg.agent_addr = "127.0.0.1:7444";
	f.cfg.hooks.online = online;
	struct store_txn *t = store_txn_begin(f.cfg.store, 0);
	char *tok = auth_token_create(t, f.cfg.rng, "owner", AUTH_OWNER);
	struct fleet_instance in;
	char *jt = NULL;
	fleet_add(t, f.cfg.rng, "web-1", 1, &in, &jt, err, sizeof err);
	/* a service with a deployment and its agent's report, for the
	 * services listing to merge */
	struct deploys_new dn = {"default", "api", in.id, "name: api\ntype: web\nport: 8080\n",
				 NULL, NULL, NULL};
	struct deploys_rec d;
	if (deploys_add(t, f.cfg.rng, &dn, 1, &d, err, sizeof err) < 0)
		abort();
	struct svcstatus st = {0};
	snprintf(st.cluster, sizeof st.cluster, "default");
	snprintf(st.service, sizeof st.service, "api");
	snprintf(st.instance, sizeof st.instance, "%s", in.id);
	snprintf(st.release, sizeof st.release, "%s", d.id);
	snprintf(st.state, sizeof st.state, "running");
	snprintf(st.health, sizeof st.health, "healthy");
	st.ts_ms = 1;
	svcstatus_put(t, &st);
	deploys_rec_release(&d);
	if (store_txn_commit(t, err, sizeof err) < 0)
		abort();
	snprintf(f.auth, sizeof f.auth, "Bearer %s", tok);
	free(tok);
	free(jt);
	return &f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "get", ""};
	struct fz *f = setup();
	char path[512];
	if (size < 2)
		return 0;
	const char *method = methods[data[0] % 6];
	const char *auth = data[1] & 1 ? f->auth : data[1] & 2 ? "Bearer dpy_x" : NULL;
	data += 2;
	size -= 2;
	size_t n = 0;
	while (n < size && n < sizeof path - 1 && data[n] != '\n')
		n++;
	memcpy(path, data, n);
	path[n] = 0;
	const uint8_t *body = n < size ? data + n + 1 : data + n;
	size_t blen = n < size ? size - n - 1 : 0;
	char *b = malloc(blen + 1);
	memcpy(b, body, blen);
	b[blen] = 0;
	/* "path?query" exercises the query parsing of the routes that take one */
	char *q = strchr(path, '?');
	if (q)
		*q++ = 0;
	struct api_request req = { .method = method, .path = path, .authorization = auth,
				   .body = b, .body_len = blen, .query = q };
	struct api_response r;
	api_response_init(&r);
	api_handle(&f->cfg, &req, &r);
	char err[256];
	switch (r.status) {
	case 101:
		if (!r.stream_task[0])
			abort();
		break;
	case 200:
		if (strcmp(r.content_type, "text/plain") == 0)
			break;
		/* fallthrough */
	case 201:
	case 400:
	case 401:
	case 403:
	case 404:
	case 405:
	case 409: {
		struct proto_json *doc = proto_json_parse(r.body.data, r.body.len, err, sizeof err);
		if (!doc)
			abort(); /* every reply is valid JSON */
		proto_json_free(doc);
		break;
	}
	default:
		abort(); /* 500s mean a store failure, which fuzzing must not cause */
	}
	api_response_release(&r);
	free(b);
	return 0;
}
