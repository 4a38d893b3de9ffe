#!/bin/sh
# pki: the CA, server and client certificates and keys it writes are
# accepted by OpenSSL (a real peer), with the extensions dployr relies on.
. "$(dirname "$0")/lib.sh"

TOOLS=${DPLOYR_TOOLS:-$TOP/build/release/tools}
OPENSSL=/usr/bin/openssl

if ! test -x "$OPENSSL"; then
	test_skip 'pki files checked by openssl' 'no openssl'
	test_done
fi

test_expect_success 'pki-make writes a CA, server and client certificates' '
	test -x "$TOOLS/pki-make" || { say "missing $TOOLS/pki-make: run make"; exit 1; } &&
	mkdir pki && "$TOOLS/pki-make" pki &&
	for f in ca server client other expired; do test -s pki/$f.pem || exit 1; done
'

test_expect_success 'private keys are mode 0600, certificates 0644, no temporary files' '
	for k in ca server client other expired; do
		test "$(stat -c %a pki/$k.key)" = 600 || { say "pki/$k.key"; exit 1; }
	done &&
	test "$(stat -c %a pki/server.pem)" = 644 &&
	! ls pki | grep -q tmp
'

test_expect_success 'openssl reads the keys as P-256 and they match the certificates' '
	for k in ca server client; do
		"$OPENSSL" ec -in pki/$k.key -check -noout 2>&1 | grep -q "EC Key valid" &&
		"$OPENSSL" ec -in pki/$k.key -noout -text 2>/dev/null | grep -q prime256v1 &&
		"$OPENSSL" ec -in pki/$k.key -pubout 2>/dev/null >$k.pub1 &&
		"$OPENSSL" x509 -in pki/$k.pem -noout -pubkey >$k.pub2 &&
		test_cmp $k.pub1 $k.pub2 || exit 1
	done
'

test_expect_success 'the CA certificate: CA:TRUE, keyCertSign and cRLSign, self-signed' '
	"$OPENSSL" x509 -in pki/ca.pem -noout -text >ca.txt &&
	grep -q "CA:TRUE" ca.txt &&
	grep -q "Certificate Sign, CRL Sign" ca.txt &&
	grep -q "Subject: CN = dployr test CA" ca.txt &&
	grep -q "Issuer: CN = dployr test CA" ca.txt &&
	grep -q "Signature Algorithm: ecdsa-with-SHA256" ca.txt &&
	grep -q "Version: 3" ca.txt &&
	"$OPENSSL" verify -CAfile pki/ca.pem pki/ca.pem
'

test_expect_success 'the server certificate: SAN names, serverAuth, CA:FALSE' '
	"$OPENSSL" x509 -in pki/server.pem -noout -text >srv.txt &&
	grep -q "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" srv.txt &&
	grep -q "TLS Web Server Authentication" srv.txt &&
	! grep -q "TLS Web Client Authentication" srv.txt &&
	grep -q "CA:FALSE" srv.txt &&
	grep -q "Digital Signature" srv.txt &&
	grep -q "Authority Key Identifier" srv.txt &&
	"$OPENSSL" x509 -in pki/server.pem -noout -checkhost localhost | grep -q "does match" &&
	"$OPENSSL" x509 -in pki/server.pem -noout -checkip 127.0.0.1 | grep -q "does match" &&
	"$OPENSSL" x509 -in pki/server.pem -noout -checkip 127.0.0.2 | grep -q "NOT match"
'

test_expect_success 'the client certificate: CN chosen by the signer, clientAuth, serial of 16 bytes' '
	"$OPENSSL" x509 -in pki/client.pem -noout -text >cli.txt &&
	grep -q "Subject: CN = i-e2e" cli.txt &&
	! grep -q pending cli.txt &&
	grep -q "TLS Web Client Authentication" cli.txt &&
	! grep -q "Subject Alternative Name" cli.txt &&
	"$OPENSSL" x509 -in pki/client.pem -noout -serial >serial &&
	grep -Eq "^serial=[0-9A-F]{32}$" serial
'

test_expect_success 'openssl verify accepts the chains for their purpose only' '
	"$OPENSSL" verify -CAfile pki/ca.pem -purpose sslserver pki/server.pem &&
	"$OPENSSL" verify -CAfile pki/ca.pem -purpose sslclient pki/client.pem &&
	test_must_fail "$OPENSSL" verify -CAfile pki/ca.pem -purpose sslserver pki/client.pem &&
	test_must_fail "$OPENSSL" verify -CAfile pki/ca.pem -purpose sslclient pki/server.pem
'

test_expect_success 'openssl verify refuses the other CA'"'"'s and the expired certificate' '
	test_must_fail "$OPENSSL" verify -CAfile pki/ca.pem pki/other.pem >out 2>&1 &&
	grep -q "unable to get local issuer" out &&
	"$OPENSSL" verify -CAfile pki/other-ca.pem pki/other.pem &&
	test_must_fail "$OPENSSL" verify -CAfile pki/ca.pem pki/expired.pem >out 2>&1 &&
	grep -q "certificate has expired" out
'

test_expect_success 'the CA fingerprint is the SHA-256 of the DER, as openssl computes it' '
	"$OPENSSL" x509 -in pki/ca.pem -noout -fingerprint -sha256 |
		sed "s/.*=//; s/://g" | tr A-F a-f >want &&
	sed "s/^sha256://" pki/fingerprint >got &&
	grep -Eq "^sha256:[0-9a-f]{64}$" pki/fingerprint &&
	test_cmp want got
'

test_done
