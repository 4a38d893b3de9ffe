/* tls-mem [N]: memory per idle TLS connection (a benchmark, not a test).
 *
 * Opens N (default 200) mutually authenticated connections over socketpairs
 * in this process, completes every handshake, then reports the memory held
 * per idle connection, server side and client side. Two measures:
 *   heap  bytes allocated (exact; only in the ASan build, which exposes
 *         the allocator's count: build/asan/tools/tls-mem)
 *   rss   resident memory growth (both builds; pages of the 16 KiB record
 *         buffers that were never touched do not count)
 * and the CPU time per handshake (client and server side together, the
 * figure for planning a reconnect storm; meaningful in the release build).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "pki.h"
#include "tls.h"
#include "xalloc.h"

/* Provided by the sanitizer runtime when there is one. */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static long heap_bytes(void)
{
	return __sanitizer_get_current_allocated_bytes ? (long)__sanitizer_get_current_allocated_bytes()
						       : -1;
}

static long rss_bytes(void)
{
	long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static void die(const char *err)
{
	fprintf(stderr, "tls-mem: %s\n", err);
	exit(1);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	char err[300];
	time_t now = time(NULL);
	if (n < 1)
		die("N must be positive");
	struct crypt_rng *rng = crypt_rng_new();
	struct pki_key *ca_key = pki_key_generate(rng), *sk = pki_key_generate(rng),
		       *ck = pki_key_generate(rng);
	struct pki_cert_opts o = { .cn = "CA", .not_before = now - 60, .not_after = now + 3600 };
	char *ca = pki_ca_create(ca_key, &o, rng, err, sizeof(err));
	const char *dns[] = { "localhost" };
	struct pki_cert_opts so = { .cn = "base", .not_before = now - 60, .not_after = now + 3600,
				    .dns = dns, .ndns = 1 };
	char *srv = pki_server_cert(ca, ca_key, sk, &so, rng, err, sizeof(err));
	char *csr = pki_csr_create(ck, "x", rng, err, sizeof(err));
	struct pki_cert_opts co = { .cn = "i-1", .not_before = now - 60, .not_after = now + 3600 };
	char *cli = csr ? pki_csr_sign(ca, ca_key, csr, &co, rng, err, sizeof(err)) : NULL;
	if (!ca || !srv || !cli)
		die(err);
	char *skey = pki_key_pem(sk), *ckey = pki_key_pem(ck);
	struct tls_config *scfg = tls_config_new_server(ca, srv, skey, 1, err, sizeof(err));
	struct tls_config *ccfg = scfg ? tls_config_new_client(ca, cli, ckey, err, sizeof(err)) : NULL;
	if (!ccfg)
		die(err);

	struct tls_conn **s = xcalloc((size_t)n, sizeof(*s)), **c = xcalloc((size_t)n, sizeof(*c));
	int *fds = xcalloc((size_t)n * 2, sizeof(*fds));
	long h0 = heap_bytes(), r0 = rss_bytes();
	clock_t t0 = clock();
	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds + 2 * i) < 0)
			die("socketpair failed (raise ulimit -n?)");
		s[i] = tls_conn_new(scfg, fds[2 * i]);
		c[i] = tls_conn_new(ccfg, fds[2 * i + 1]);
		int rs = TLS_WANT_READ, rc = TLS_WANT_READ;
		for (int k = 0; k < 100 && (rs != TLS_OK || rc != TLS_OK); k++) {
			if (rc != TLS_OK)
				rc = tls_handshake(c[i]);
			if (rs != TLS_OK)
				rs = tls_handshake(s[i]);
			if (rs == TLS_ERROR || rc == TLS_ERROR)
				die(rs == TLS_ERROR ? tls_error(s[i]) : tls_error(c[i]));
		}
		if (rs != TLS_OK || rc != TLS_OK)
			die("handshake did not complete");
	}
	clock_t t1 = clock();
	long h1 = heap_bytes(), r1 = rss_bytes();
	for (int i = 0; i < n; i++)
		tls_conn_free(c[i]);
	long h2 = heap_bytes(), r2 = rss_bytes();

	printf("%d idle connections after the handshake\n", n);
	if (h0 >= 0)
		printf("heap per connection: server %ld bytes, client %ld bytes\n", (h2 - h0) / n,
		       (h1 - h2) / n);
	else
		printf("heap per connection: (run the ASan build for exact heap figures)\n");
	/* freeing does not return memory to the kernel: rss for the client
	 * side alone is not measurable this way */
	printf("rss per connection pair (server + client): %ld bytes\n", (r1 - r0) / n);
	(void)r2;
	printf("cpu per handshake (both sides): %.1f ms\n",
	       (double)(t1 - t0) * 1000.0 / CLOCKS_PER_SEC / n);

	for (int i = 0; i < n; i++) {
		tls_conn_free(s[i]);
		close(fds[2 * i]);
		close(fds[2 * i + 1]);
	}
	free(s);
	free(c);
	free(fds);
	tls_config_free(scfg);
	tls_config_free(ccfg);
	crypt_wipe(skey, strlen(skey));
	crypt_wipe(ckey, strlen(ckey));
	free(skey);
	free(ckey);
	free(ca);
	free(srv);
	free(csr);
	free(cli);
	pki_key_free(ca_key);
	pki_key_free(sk);
	pki_key_free(ck);
	crypt_rng_free(rng);
	return 0;
}
