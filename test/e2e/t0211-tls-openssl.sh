#!/bin/sh
# tls: a server built on the tls module (test/tools/tls-echo) checked by a
# real peer, openssl s_client: mutual TLS 1.2 with ECDHE-ECDSA AEAD suites
# works and echoes; no client certificate, a foreign or expired one, TLS
# 1.3 only, TLS 1.1, and non-AEAD suites are refused.
. "$(dirname "$0")/lib.sh"

TOOLS=${DPLOYR_TOOLS:-$TOP/build/release/tools}
OPENSSL=/usr/bin/openssl

if ! test -x "$OPENSSL"; then
	test_skip 's_client against tls-echo' 'no openssl'
	test_done
fi

test_expect_success 'start tls-echo with pki-made certificates' '
	test -x "$TOOLS/tls-echo" || { say "missing $TOOLS/tls-echo: run make"; exit 1; }
'
mkdir pki && "$TOOLS/pki-make" pki || exit 1
test_spawn "$TOOLS/tls-echo" pki port 2>echo.log
wait_for 10 test -s port || exit 1
PORT=$(cat port)

# client [ARGS...]: s_client with the CA pinned, verification errors fatal,
# input from stdin; output (the echo) on stdout, diagnostics in s_client.err.
client() {
	timeout 20 "$OPENSSL" s_client -connect "127.0.0.1:$PORT" -CAfile pki/ca.pem \
		-verify_return_error -quiet "$@" 2>s_client.err
}

# Tests run in subshells: each notes the log length first (m=$(mark)),
# then said $m [K] waits for the server's K-th line after it and prints it.
mark() { wc -l <echo.log; }
said() {
	n=$(($1 + ${2:-1}))
	wait_for 10 sh -c "test \$(wc -l <echo.log) -ge $n" && sed -n "${n}p" echo.log
}

test_expect_success 'with a client certificate: handshake, echo, peer CN seen by the server' '
	printf "hello dployr\nbye\n" | client -cert pki/client.pem -key pki/client.key \
		-servername localhost -verify_hostname localhost >out &&
	grep -q "^hello dployr$" out &&
	said 0 >said &&
	grep -q "^handshake ok cn=i-e2e serial=[0-9a-f]\{32\} suite=TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256$" said
'

test_expect_success 'each of the three AEAD suites is accepted' '
	for c in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
		printf "x\nbye\n" | client -cert pki/client.pem -key pki/client.key \
			-tls1_2 -cipher $c >out && grep -q "^x$" out || { say "$c"; exit 1; }
	done &&
	said 0 8 | grep -q "^closed$" &&
	grep -q "suite=TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384$" echo.log &&
	grep -q "suite=TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256$" echo.log
'
test_expect_success '100 KiB echoed intact' '
	m=$(mark) &&
	od -An -tx1 -v -N 51200 /dev/urandom | tr -d " " >data && echo bye >>data &&
	test $(wc -c <data) -gt 102400 &&
	client -cert pki/client.pem -key pki/client.key <data >out &&
	test_cmp data out &&
	said $m 1 | grep -q "^handshake ok" && said $m 2 | grep -q "^closed$"
'

test_expect_success 'without a client certificate: refused' '
	m=$(mark) &&
	! printf "hello\nbye\n" | client >out &&
	! grep -q hello out &&
	said $m | grep -q "^handshake failed: .*No client certification"
'

test_expect_success 'a client certificate from another CA: refused' '
	m=$(mark) &&
	! printf "hello\nbye\n" | client -cert pki/other.pem -key pki/other.key >out &&
	! grep -q hello out &&
	said $m | grep -q "^handshake failed: .*not correctly signed by the trusted CA"
'

test_expect_success 'an expired client certificate: refused' '
	m=$(mark) &&
	! printf "hello\nbye\n" | client -cert pki/expired.pem -key pki/expired.key >out &&
	! grep -q hello out &&
	said $m | grep -q "^handshake failed: .*expired"
'

test_expect_success 'TLS 1.3 only: refused' '
	m=$(mark) &&
	! printf "hello\nbye\n" | client -cert pki/client.pem -key pki/client.key -tls1_3 >out &&
	! grep -q hello out &&
	said $m | grep -q "^handshake failed: "
'

test_expect_success 'TLS 1.1 (offered at OpenSSL security level 0): refused by the server' '
	m=$(mark) &&
	! printf "hello\nbye\n" | client -cert pki/client.pem -key pki/client.key -tls1_1 \
		-cipher "DEFAULT:@SECLEVEL=0" >out &&
	! grep -q hello out &&
	said $m | grep -q "^handshake failed: .*min/max"
'

test_expect_success 'non-AEAD suites (CBC, SHA-1 and SHA-256 MACs): refused by the server' '
	for c in ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA ECDHE-RSA-AES128-GCM-SHA256; do
		m=$(mark) &&
	! printf "hello\nbye\n" | client -cert pki/client.pem -key pki/client.key \
			-tls1_2 -cipher $c >out || { say "$c accepted"; exit 1; }
		! grep -q hello out &&
		said $m | grep -q "^handshake failed: .*no ciphersuites in common" || { say "$c"; exit 1; }
	done
'
test_expect_success 'the client refuses the server under another CA pin' '
	m=$(mark) &&
	! printf "hello\nbye\n" | timeout 20 "$OPENSSL" s_client -connect "127.0.0.1:$PORT" \
		-CAfile pki/other-ca.pem -verify_return_error -quiet \
		-cert pki/client.pem -key pki/client.key >out 2>err &&
	grep -q "unable to get local issuer certificate" err &&
	said $m | grep -q "^handshake failed: "
'

test_expect_success 'the server is still serving after all that' '
	printf "still here\nbye\n" | client -cert pki/client.pem -key pki/client.key >out &&
	grep -q "^still here$" out
'

test_expect_success 'no sanitizer reports' '
	test_scan_sanitizer_logs
'

test_done
