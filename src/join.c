/* join: see join.h. */
#include "join.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "crypt.h"
#include "net.h"
#include "pki.h"
#include "proto.h"
#include "tls.h"
#include "xalloc.h"

static char *path_in(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

/* mkdir -p, the last component 0700 (also when it exists). */
static int make_dir(const char *dir, char *err, size_t errlen)
{
	char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "create '%s': %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "create '%s': %s", dir, strerror(errno));
		return -1;
	}
	if (chmod(dir, 0700) < 0) {
		snprintf(err, errlen, "chmod '%s': %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static void host_of(const char *addr, char *out, size_t cap)
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(out, addr, n);
	out[n] = 0;
}

/* A wildcard or missing host in the agent address base reports (it listens
 * on 0.0.0.0:7444) means "the host you reached me at". */
static void agent_addr_for(const char *given, const char *base_host, char *out, size_t cap)
{
	char host[301];
	host_of(given, host, sizeof(host));
	const char *port = strrchr(given, ':');
	struct buf b = BUF_INIT;
	if (port && (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0))
		buf_printf(&b, strchr(base_host, ':') ? "[%s]%s" : "%s%s", base_host, port);
	else
		buf_puts(&b, given);
	snprintf(out, cap, "%s", b.data);
	buf_release(&b);
}

/* The "error" of an error reply, into msg. */
static const char *reply_error(const struct buf *body, char *msg, size_t cap)
{
	struct proto_json *doc = proto_json_parse(body->data, body->len, NULL, 0);
	const char *e = doc ? proto_jv_get_str(proto_json_root(doc), "error") : NULL;
	snprintf(msg, cap, "%s", e ? e : "no reason given");
	proto_json_free(doc);
	return msg;
}

int join_run(const struct join_opts *o, struct join_result *res, char *err, size_t errlen)
{
	int rc = -1, status = 0;
	char m[1024];
	char *ca = NULL, *csr = NULL, *keypem = NULL, *p = NULL;
	struct pki_key *key = NULL;
	struct tls_config *tls = NULL;
	struct crypt_rng *rng = crypt_rng_new();
	struct buf req = BUF_INIT, body = BUF_INIT, json = BUF_INIT;
	struct proto_json *doc = NULL;
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : 15000;
	memset(res, 0, sizeof(*res));

	p = path_in(o->data_dir, "agent.json");
	if (access(p, F_OK) == 0) {
		snprintf(err, errlen, "data dir '%s' is already joined (remove it to join again)",
			 o->data_dir);
		goto out;
	}
	struct net_addr addr;
	if (net_resolve(o->base, &addr, m, sizeof(m)) < 0) {
		snprintf(err, errlen, "base: %s", m);
		goto out;
	}
	char host[301];
	host_of(o->base, host, sizeof(host));

	ca = conn_fetch_pinned_ca(&addr, o->ca_fingerprint, timeout, m, sizeof(m));
	if (!ca) {
		snprintf(err, errlen, "%s", m);
		goto out;
	}
	tls = tls_config_new_client(ca, NULL, NULL, m, sizeof(m));
	if (!tls) {
		snprintf(err, errlen, "pinned ca: %s", m);
		goto out;
	}
	key = pki_key_generate(rng);
	csr = pki_csr_create(key, "dployr-agent", rng, m, sizeof(m));
	if (!csr) {
		snprintf(err, errlen, "csr: %s", m);
		goto out;
	}
	buf_puts(&req, "{\"token\":");
	buf_json_cstr(&req, o->token);
	buf_puts(&req, ",\"csr\":");
	buf_json_cstr(&req, csr);
	if (o->name) {
		buf_puts(&req, ",\"name\":");
		buf_json_cstr(&req, o->name);
	}
	buf_putc(&req, '}');
	static const char *const headers[] = {"Content-Type", "application/json", NULL};
	int r = conn_request_sync(&addr, tls, host, "POST", "/v1/join", headers, req.data, req.len,
				  &status, &body, timeout, m, sizeof(m));
	crypt_wipe(req.data, req.len);
	if (r < 0) {
		snprintf(err, errlen, "join: %s", m);
		goto out;
	}
	if (status == 401 || status == 403) {
		snprintf(err, errlen, "join token refused (unknown, used or expired): %s",
			 reply_error(&body, m, sizeof(m)));
		goto out;
	}
	if (status != 200 && status != 201) {
		snprintf(err, errlen, "join: base answered %d: %s", status,
			 reply_error(&body, m, sizeof(m)));
		goto out;
	}
	doc = proto_json_parse(body.data, body.len, m, sizeof(m));
	if (!doc) {
		snprintf(err, errlen, "join reply: %s", m);
		goto out;
	}
	const struct proto_jv *root = proto_json_root(doc);
	const char *id = proto_jv_get_str(root, "instance_id");
	const char *name = proto_jv_get_str(root, "name");
	const char *cert = proto_jv_get_str(root, "cert");
	const char *rca = proto_jv_get_str(root, "ca");
	const char *aaddr = proto_jv_get_str(root, "agent_addr");
	if (!id || !name || !cert || !aaddr || !*id || strlen(id) >= sizeof(res->instance_id) ||
	    strlen(name) >= sizeof(res->name) || strlen(aaddr) >= 200) {
		snprintf(err, errlen,
			 "join reply: 'instance_id', 'name', 'cert' and 'agent_addr' are required");
		goto out;
	}
	char fp[PKI_FINGERPRINT_LEN + 1];
	if (rca && (pki_cert_fingerprint(rca, fp, m, sizeof(m)) < 0 ||
		    strcmp(fp, o->ca_fingerprint) != 0)) {
		snprintf(err, errlen, "join reply: the ca differs from the pinned one");
		goto out;
	}
	struct pki_cert_info info;
	if (pki_cert_verify(ca, cert, NULL, m, sizeof(m)) < 0 ||
	    pki_cert_info(cert, &info, m, sizeof(m)) < 0) {
		snprintf(err, errlen, "join reply: certificate: %s", m);
		goto out;
	}
	if (strcmp(info.cn, id) != 0) {
		snprintf(err, errlen, "join reply: certificate is for '%s', not '%s'", info.cn, id);
		goto out;
	}
	keypem = pki_key_pem(key);
	struct tls_config *check = tls_config_new_client(ca, cert, keypem, m, sizeof(m));
	if (!check) {
		snprintf(err, errlen, "join reply: certificate: %s", m);
		goto out;
	}
	tls_config_free(check);
	snprintf(res->instance_id, sizeof(res->instance_id), "%s", id);
	snprintf(res->name, sizeof(res->name), "%s", name);
	agent_addr_for(aaddr, host, res->agent_addr, sizeof(res->agent_addr));

	if (make_dir(o->data_dir, err, errlen) < 0)
		goto out;
	char *kp = path_in(o->data_dir, "agent.key");
	char *cp = path_in(o->data_dir, "agent.crt");
	char *ap = path_in(o->data_dir, "ca.crt");
	int w = pki_key_write_file(key, kp, m, sizeof(m)) < 0 ||
		pki_write_file(cp, cert, 0644, m, sizeof(m)) < 0 ||
		pki_write_file(ap, ca, 0644, m, sizeof(m)) < 0;
	free(kp);
	free(cp);
	free(ap);
	if (w) {
		snprintf(err, errlen, "%s", m);
		goto out;
	}
	buf_puts(&json, "{\"instance_id\":");
	buf_json_cstr(&json, res->instance_id);
	buf_puts(&json, ",\"name\":");
	buf_json_cstr(&json, res->name);
	buf_puts(&json, ",\"base_api\":");
	buf_json_cstr(&json, o->base);
	buf_puts(&json, ",\"agent_addr\":");
	buf_json_cstr(&json, res->agent_addr);
	buf_puts(&json, ",\"ca_fingerprint\":");
	buf_json_cstr(&json, o->ca_fingerprint);
	buf_puts(&json, "}\n");
	if (pki_write_file(p, json.data, 0600, m, sizeof(m)) < 0) {
		snprintf(err, errlen, "%s", m);
		goto out;
	}
	rc = 0;
out:
	proto_json_free(doc);
	buf_release(&req);
	buf_release(&body);
	buf_release(&json);
	if (keypem) {
		crypt_wipe(keypem, strlen(keypem));
		free(keypem);
	}
	pki_key_free(key);
	free(csr);
	free(ca);
	free(p);
	tls_config_free(tls);
	crypt_rng_free(rng);
	return rc;
}
