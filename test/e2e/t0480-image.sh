#!/bin/sh
# source: image end to end: a local image (a rootfs tar holding a static
# busybox, imported with podman, no registry) deployed as a web service with
# runtime docker: the agent picks podman, records the image id as the
# revision, runs the container on the host network with PORT in its
# environment, and Caddy serves it on the blueprint port; stop and start
# work in place; a redeploy replaces the container; cleanup removes the
# containers and the image. Skipped when podman cannot run a container here.
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/deploy-lib.sh"

IMG=localhost/dployr-test/hello:1
BP_PORT=18480

image_cleanup() {
	for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep '^dployr-imgapp-'); do
		timeout 30 podman rm -f "$c" >/dev/null 2>&1
	done
	timeout 30 podman rmi -f "$IMG" >/dev/null 2>&1
	deploy_cleanup
}
trap image_cleanup EXIT

if ! test_have root || ! test_have curl || ! test_have podman || ! test -x /bin/busybox; then
	test_skip 'image end to end' 'needs root, curl, podman and /bin/busybox (busybox-static)'
	test_done
fi

# The image: /bin/busybox, /bin/sh -> busybox, /www/index.html.
mkdir -p rootfs/bin rootfs/www &&
	cp /bin/busybox rootfs/bin/busybox && ln -s busybox rootfs/bin/sh &&
	echo "hello from an image" >rootfs/www/index.html &&
	tar -C rootfs -cf rootfs.tar . &&
	timeout 120 podman import -q rootfs.tar "$IMG" >import.out 2>&1
# Can this host run it? (the flags the agent passes on a host like this one)
if ! timeout 60 podman --runtime runc run --rm --ulimit nofile=1024:1024 \
	--ulimit nproc=1024:1024 --network host "$IMG" /bin/busybox true >probe.out 2>&1; then
	test_skip 'image end to end' "podman cannot run a container here: $(tail -n 1 probe.out)"
	test_done
fi

test_expect_success 'base, login, an instance with its agent online' '
	deploy_setup img-1 a1
'

test_expect_success 'a web service from the image' '
	cat >img.yaml <<-EOF
	name: imgapp
	type: web
	source: image
	image: $IMG
	runtime: docker
	port: $BP_PORT
	env_vars:
	  GREETING: hi
	run_cmd: busybox httpd -f -p 127.0.0.1:\$PORT -h /www
	EOF
'

containers() {
	podman ps --format "{{.Names}}" | grep "^dployr-imgapp-" | sort
}

test_expect_success 'deploy: podman runs it, the image id is the revision, Caddy serves it' '
	dployr deploy -f img.yaml -i img-1 >d1.out 2>d1.err || { cat d1.out d1.err; false; } &&
	id=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#1).*/\1/p" d1.err) &&
	grep -q "^deployment $id done: imgapp is running on 127.0.0.1:[0-9]* (pid [0-9]*)$" d1.err &&
	iid=$(podman image inspect --format "{{.Id}}" $IMG) &&
	test "$(deploy_field imgapp $id revision)" = "$iid" &&
	grep -q "podman" d1.out &&
	test "$(curl -sS http://127.0.0.1:$BP_PORT/)" = "hello from an image" &&
	test "$(containers)" = "dployr-imgapp-$id" &&
	echo $id >id1
'

test_expect_success 'the values are in the container environment, not in argv' '
	id=$(cat id1) &&
	podman exec dployr-imgapp-$id /bin/busybox env >cenv &&
	grep -qx "GREETING=hi" cenv &&
	grep -q "^PORT=[0-9]" cenv &&
	! grep -q "^PATH=.*$TRASH" cenv &&
	pid=$(pgrep -f "podman.*run.*dployr-imgapp-$id" | head -n 1) &&
	tr "\0" " " </proc/$pid/cmdline >argv &&
	grep -q " -e GREETING " argv &&
	! grep -q "GREETING=" argv
'

test_expect_success 'stop and start: the container ends and comes back' '
	id=$(cat id1) &&
	dployr stop imgapp 2>err && grep -q "^imgapp: stop asked$" err &&
	wait_for 30 sh -c "test -z \"\$(podman ps -q --filter name=dployr-imgapp-$id)\"" &&
	! curl -sf http://127.0.0.1:$BP_PORT/ >/dev/null &&
	wait_for 30 sh -c "\"$DPLOYR\" services | grep -q \"^imgapp .* stopped \"" &&
	dployr start imgapp 2>err && grep -q "^imgapp: start asked$" err &&
	wait_for 30 curl -sf http://127.0.0.1:$BP_PORT/ &&
	test "$(containers)" = "dployr-imgapp-$id"
'

test_expect_success 'a redeploy replaces the container' '
	echo "hello again" >rootfs/www/index.html &&
	dployr deploy -f img.yaml -i img-1 >d2.out 2>d2.err || { cat d2.out d2.err; false; } &&
	id2=$(sed -n "s/^deployment \(d-[0-9a-f]*\) (#2).*/\1/p" d2.err) &&
	test -n "$id2" && test "$id2" != "$(cat id1)" &&
	wait_for 30 sh -c "test \"\$(podman ps --format {{.Names}} | grep ^dployr-imgapp- )\" = dployr-imgapp-$id2" &&
	test "$(curl -sS http://127.0.0.1:$BP_PORT/)" = "hello from an image"
'

test_expect_success 'an image that is not there and cannot be pulled: a clear error' '
	sed "s|^image: .*|image: localhost/dployr-test/nosuch:1|" img.yaml >bad.yaml &&
	test_expect_code 1 dployr deploy -f bad.yaml -i img-1 >b.out 2>b.err &&
	grep -q "^deployment d-[0-9a-f]* error: fetch: pull .localhost/dployr-test/nosuch:1.: exited with status" b.err &&
	test "$(curl -sS http://127.0.0.1:$BP_PORT/)" = "hello from an image"
'

test_done
