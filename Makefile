# dployr: one static executable, built with musl.
#
#   make            set up what is missing (packages, pinned sources), build ./dployr
#   make up         build, then run ./dployr up (base and a local agent) in the foreground
#   make test       build, then run every test (unit, ASan+UBSan unit, e2e, fuzz smoke)
#   make asan       dynamic clang build with ASan+UBSan: build/asan/dployr, build/asan/unit
#   make fuzz       libFuzzer targets under build/fuzz/
#   make check-headers  compile every header alone
#   make clean
#
# Every variant compiles the five third-party libraries from the fetched
# sources with its own compiler and flags, so a sanitizer build instruments
# them too. VARIANT (release, asan, fuzz) with CC, VARIANT_CFLAGS and
# VARIANT_LDFLAGS selects a variant; the top-level targets set them. B is
# the build root (default build/): several trees can build side by side.

B ?= build
VARIANT ?= release
O := $(B)/$(VARIANT)
CC_RELEASE ?= musl-gcc
V ?= 0
NPROC := $(shell nproc 2>/dev/null || echo 2)
Q = $(if $(filter 1,$(V)),,@)

VENDOR := vendor/src
MUSL_INC := $(B)/musl-include

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -Iapplets -Iapplets/common -Itest/unit -I$(B)/gen \
	-I$(VENDOR)/mbedtls/include -I$(VENDOR)/lmdb/libraries/liblmdb \
	-I$(VENDOR)/libyaml/include -I$(VENDOR)/cjson -I$(VENDOR)/wslay/lib/includes \
	-DYAML_DECLARE_STATIC

# Release: musl, fully static, optimised for size and speed alike.
ifeq ($(VARIANT),release)
CC := $(CC_RELEASE)
VARIANT_CFLAGS ?= -O2 -g -isystem $(MUSL_INC) -ffunction-sections -fdata-sections
VARIANT_LDFLAGS ?= -static -Wl,--gc-sections
endif

CFLAGS_ALL := $(BASE_CFLAGS) $(VARIANT_CFLAGS) $(EXTRA_CFLAGS)
VENDOR_CFLAGS := $(filter-out -std=c11 -Werror,$(CFLAGS_ALL)) -w

# --- third-party objects -------------------------------------------------
MBEDTLS_SRC := $(wildcard $(VENDOR)/mbedtls/library/*.c)
LMDB_SRC := $(VENDOR)/lmdb/libraries/liblmdb/mdb.c $(VENDOR)/lmdb/libraries/liblmdb/midl.c
YAML_SRC := $(wildcard $(VENDOR)/libyaml/src/*.c)
CJSON_SRC := $(VENDOR)/cjson/cJSON.c
WSLAY_SRC := $(wildcard $(VENDOR)/wslay/lib/*.c)
VENDOR_SRC := $(MBEDTLS_SRC) $(LMDB_SRC) $(YAML_SRC) $(CJSON_SRC) $(WSLAY_SRC)
VENDOR_OBJ := $(patsubst $(VENDOR)/%.c,$(O)/vendor/%.o,$(VENDOR_SRC))

$(O)/vendor/libyaml/%.o: CFLAGS_EXTRA := -DYAML_VERSION_MAJOR=0 -DYAML_VERSION_MINOR=2 \
	-DYAML_VERSION_PATCH=5 '-DYAML_VERSION_STRING="0.2.5"'
$(O)/vendor/wslay/%.o: CFLAGS_EXTRA := -DHAVE_ARPA_INET_H -DHAVE_NETINET_IN_H
$(O)/vendor/lmdb/%.o: CFLAGS_EXTRA := -DMDB_USE_ROBUST=0

$(O)/vendor/%.o: $(VENDOR)/%.c | vendor-stamp
	@mkdir -p $(@D)
	$(Q)$(CC) $(VENDOR_CFLAGS) $(CFLAGS_EXTRA) -c $< -o $@

$(O)/libvendor.a: $(VENDOR_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# --- our objects ------------------------------------------------------------
SRC := $(wildcard src/*.c)
APPLET_SRC := $(wildcard applets/*.c applets/common/*.c)
UNIT_SRC := $(wildcard test/unit/*.c)
OBJ := $(patsubst %.c,$(O)/%.o,$(SRC))
APPLET_OBJ := $(patsubst %.c,$(O)/%.o,$(APPLET_SRC))
UNIT_OBJ := $(patsubst %.c,$(O)/%.o,$(UNIT_SRC))

$(O)/%.o: %.c | $(B)/gen/version.h vendor-stamp
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS_ALL) $(WARN) -MMD -MP -c $< -o $@

-include $(OBJ:.o=.d) $(APPLET_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(patsubst %.c,$(O)/%.d,$(wildcard test/tools/*.c test/fuzz/*.c))

$(O)/libdployr.a: $(OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/dployr: $(APPLET_OBJ) $(O)/libdployr.a $(O)/libvendor.a
	$(Q)$(CC) $(VARIANT_LDFLAGS) -o $@ $(APPLET_OBJ) $(O)/libdployr.a $(O)/libvendor.a
	@echo "  built $@"

$(O)/unit: $(UNIT_OBJ) $(O)/libdployr.a $(O)/libvendor.a
	$(Q)$(CC) $(VARIANT_LDFLAGS) -o $@ $(UNIT_OBJ) $(O)/libdployr.a $(O)/libvendor.a

# Test tools: test/tools/NAME.c -> $(O)/tools/NAME, linked with the modules
# (helpers for end-to-end tests, e.g. dumping a parsed YAML tree as JSON).
TOOL_SRC := $(wildcard test/tools/*.c)
TOOL_BIN := $(patsubst test/tools/%.c,$(O)/tools/%,$(TOOL_SRC))
tools: $(TOOL_BIN)
$(O)/tools/%: $(O)/test/tools/%.o $(O)/libdployr.a $(O)/libvendor.a
	@mkdir -p $(@D)
	$(Q)$(CC) $(VARIANT_LDFLAGS) -o $@ $^

# Version string: the git description when there is one.
$(B)/gen/version.h: FORCE
	@mkdir -p $(B)/gen
	@v=$$(git describe --always --dirty 2>/dev/null || echo unknown); \
	 l="#define DPLOYR_VERSION \"0.1.0-$$v\""; \
	 [ -f $@ ] && grep -qxF "$$l" $@ || echo "$$l" >$@

# --- variants -----------------------------------------------------------------
.DEFAULT_GOAL := all
.PHONY: all setup vendor-stamp release asan fuzz fuzz-bins tools unit-release test check-headers \
	check-layers clean distclean FORCE bench-lint

all: setup
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=release $(B)/release/dployr tools
	$(Q)strip -o dployr $(B)/release/dployr
	@echo "  ./dployr ready ($$(file -b dployr | cut -d, -f1-2 | tr -d '\n'), $$(stat -c %s dployr) bytes)"

setup:
	$(Q)scripts/setup build

vendor-stamp: $(MUSL_INC)/.stamp
	@test -f $(VENDOR)/mbedtls/.dployr-pin || { echo "missing sources: run scripts/vendor-fetch (or make)"; exit 1; }

# musl-gcc does not see <linux/*.h>: give it the kernel headers only.
$(MUSL_INC)/.stamp:
	@mkdir -p $(MUSL_INC)
	@a=$$(gcc -print-multiarch 2>/dev/null); \
	 ln -sfn /usr/include/linux $(MUSL_INC)/linux; \
	 ln -sfn /usr/include/asm-generic $(MUSL_INC)/asm-generic; \
	 ln -sfn /usr/include/$$a/asm $(MUSL_INC)/asm; touch $@

unit-release:
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=release $(B)/release/unit

ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan:
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=asan CC=clang \
		VARIANT_CFLAGS="$(ASAN_FLAGS)" VARIANT_LDFLAGS="-fsanitize=address,undefined" \
		$(B)/asan/dployr $(B)/asan/unit tools

FUZZ_SRC := $(wildcard test/fuzz/*.c)
FUZZ_BIN := $(patsubst test/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
fuzz:
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=fuzz CC=clang \
		VARIANT_CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -DDPLOYR_FUZZ" \
		VARIANT_LDFLAGS="-fsanitize=fuzzer,address,undefined" fuzz-bins

fuzz-bins: $(FUZZ_BIN)
$(B)/fuzz/%: $(O)/test/fuzz/%.o $(O)/libdployr.a $(O)/libvendor.a
	$(Q)$(CC) $(VARIANT_LDFLAGS) -o $@ $^

# The platform on this machine in the foreground (dployr-up(1)); Ctrl-C stops it.
.PHONY: up
up: all
	./dployr up

test: all
	$(Q)scripts/setup test
	$(Q)scripts/test

bench-lint: all
	$(Q)scripts/bench-lint

# Every header compiles on its own (include what you use).
check-headers: vendor-stamp
	$(Q)mkdir -p $(B)/hdr && for h in include/*.h applets/*.h applets/common/*.h; do \
	  printf '#include "%s"\n' $$(basename $$h) >$(B)/hdr/t.c; \
	  gcc $(BASE_CFLAGS) $(WARN) -fsyntax-only $(B)/hdr/t.c || { echo "header $$h is not self-contained"; exit 1; }; \
	done; echo "  headers: all self-contained"

check-layers:
	$(Q)scripts/check-layers

clean:
	rm -rf build dployr

distclean: clean
	rm -rf vendor/src vendor/dl vendor/.apt

FORCE:
