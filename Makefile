# homura build. `make` builds build/homura (with the dashboard, web/, when
# npm is present: `make web`), the allocation sampler
# build/libhomura-alloc.so (preload/) and the unit tests; `make bench`
# the C benchmark programs (bench/*.c) into build/bench/; `make asan`
# builds the same with AddressSanitizer + UBSan into build-asan/; `make fuzz`
# builds the libFuzzer targets (tests/fuzz/) with clang into build-fuzz/.
# Sources are picked up by wildcard: lib/*/ -> libhomura.a, src/ -> homura.

.DEFAULT_GOAL := all
BUILD   ?= build
CC      ?= gcc
SAN     ?=
OPT     ?= -O2 -g
CFLAGS  += -std=gnu11 $(OPT) -Wall -Wextra -Werror -Wno-unused-parameter \
           -Ilib -I$(BUILD)/gen -D_GNU_SOURCE $(SAN)
LDFLAGS += $(SAN)
LIBS    := -lelf -ldw -lz -lprotobuf-c -ljansson -lcurl -lmicrohttpd -lsqlite3 -lpq \
           -lncursesw -lpthread -lm

PROTOS    := $(shell find proto -name '*.proto' 2>/dev/null)
PROTO_C   := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
LIB_SRC   := $(shell find lib -name '*.c' ! -name '*.bpf.c' | LC_ALL=C sort)
UI_C      := $(BUILD)/gen/ui_assets.c
LIB_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(PROTO_C:.c=.o) $(UI_C:.c=.o)
CLI_SRC   := $(wildcard src/*.c)
CLI_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(CLI_SRC))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

# The in-kernel sampler (record --ebpf): built when clang, bpftool and
# libbpf-dev are there (scripts/install-deps.sh installs them); without
# them homura builds without it and --ebpf says so.
BPF_CLANG ?= $(shell command -v clang-14 || command -v clang)
BPFTOOL   ?= $(shell command -v bpftool || ls /usr/sbin/bpftool 2>/dev/null)
HAVE_EBPF ?= $(if $(and $(BPF_CLANG),$(BPFTOOL),$(wildcard /usr/include/bpf/libbpf.h)),1,)
ifeq ($(HAVE_EBPF),1)
CFLAGS += -DHM_HAVE_EBPF
LIBS   += -lbpf
BPF_SKEL := $(BUILD)/gen/sample/pystack.skel.h
$(BUILD)/gen/sample/pystack.bpf.o: lib/sample/bpf/pystack.bpf.c lib/sample/bpf/pystack.h lib/sample/bpf/otelspan.bpf.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) -O2 -g -target bpf -Wall -Werror -I/usr/include/$(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu) -c $< -o $@
$(BPF_SKEL): $(BUILD)/gen/sample/pystack.bpf.o
	$(BPFTOOL) gen skeleton $< name hm_pystack > $@.tmp && mv $@.tmp $@
$(BUILD)/lib/sample/ebpf.o: $(BPF_SKEL)
endif

HELPER_BIN := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(wildcard tests/helpers/*.c))

all: $(BUILD)/homura $(BUILD)/libhomura-alloc.so $(UNIT_BIN) $(HELPER_BIN)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/%.o: %.c $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# keep generated sources (they are chained intermediates otherwise)
.SECONDARY: $(PROTO_C) $(PROTO_C:.c=.h)
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c $(PROTO_C)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -w -c $< -o $@

# ---- the dashboard (web/, docs/dashboard.md): `make web` bundles it with
# esbuild (npm ci from web/package-lock.json) into web/dist/, whose
# ui_assets.c holds every file as a C array; it is copied into $(BUILD)/gen/
# and linked in, so the server needs no file at run time. Without npm (or
# when its build fails) a stub with no files is linked instead and / says
# how to build the UI.
NPM     := $(shell command -v npm 2>/dev/null)
WEB_SRC := $(wildcard web/src/* web/index.html web/build.mjs web/package.json web/package-lock.json)

web: web/dist/ui_assets.c

web/dist/ui_assets.c: $(WEB_SRC)
ifneq ($(NPM),)
	@cd web && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
	  npm ci --no-audit --no-fund --loglevel=error; } && node build.mjs || \
	  echo "make: WARNING: the dashboard did not build (web/); the server will say so at /" >&2
else
	@echo "make: npm not found: building the server without the dashboard (scripts/install-deps.sh installs it)" >&2
endif

$(UI_C): web/dist/ui_assets.c
	@mkdir -p $(dir $@)
	@if [ -f web/dist/ui_assets.c ]; then cp web/dist/ui_assets.c $@.tmp; else \
	  printf '%s\n' '/* generated: the dashboard was not built (no npm) */' \
	    '#include "server/ui.h"' 'const hm_ui_asset hm_ui_assets[1];' \
	    'const size_t hm_ui_nassets = 0;' >$@.tmp; fi
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/gen/ui_assets.o: $(UI_C) lib/server/ui.h
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libhomura.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/homura: $(CLI_OBJ) $(BUILD)/libhomura.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libhomura.a $(LIBS)

# test-only programs that drive library APIs (tests/helpers/)
$(BUILD)/tests/%: tests/helpers/%.c $(BUILD)/libhomura.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libhomura.a $(LIBS) $(LDFLAGS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libhomura.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libhomura.a $(LIBS) -lcmocka $(LDFLAGS)

# test_gpu loads a fake NVML built beside it
$(BUILD)/tests/test_gpu: $(BUILD)/tests/libfakenvml.so
$(BUILD)/tests/libfakenvml.so: tests/unit/fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -fPIC -o $@ $< $(LDFLAGS)
# The allocation sampler preloaded by `homura run --memory` (preload/): its
# sources and the parts of libhomura it uses (the in-process Python reader),
# compiled again as position-independent code with initial-exec TLS (no
# allocation on a thread's first use) into build/pic/. Never with the
# sanitizers (even in build-asan/): it is loaded into programs that do not
# carry their run-time.
PRELOAD_SRC := $(wildcard preload/*.c)
PIC_LIB_SRC := lib/base/error.c lib/proc/target.c lib/python/python.c lib/python/walker.c \
               lib/python/pylayout.c lib/python/pydecode.c lib/python/pynames.c \
               lib/python/pyobj.c lib/python/otel.c $(wildcard lib/python/layouts/py*.c) \
               $(wildcard lib/python/layouts/async_py*.c)
PIC_OBJ     := $(patsubst %.c,$(BUILD)/pic/%.o,$(PRELOAD_SRC) $(PIC_LIB_SRC))
PIC_FLAGS   := -fPIC -ftls-model=initial-exec -ffunction-sections -fdata-sections \
               -fvisibility=hidden

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SAN),$(CFLAGS)) $(PIC_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libhomura-alloc.so: $(PIC_OBJ)
	$(CC) -shared $(filter-out $(SAN),$(LDFLAGS)) -Wl,--gc-sections -Wl,-z,defs -o $@ $(PIC_OBJ) \
	  -ldl -lm -lpthread

# the C benchmark programs (bench/*.c), with the same warnings as the rest
bench: $(BENCH_BIN)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libhomura.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libhomura.a $(LIBS) $(LDFLAGS)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

unit: all
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

check: all
	./scripts/test.sh

clean:
	rm -rf build build-asan build-fuzz web/dist

.PHONY: all asan bench unit check clean web

# ---- install / uninstall: `make install [PREFIX=/usr/local] [DESTDIR=...]`
# puts bin/homura, lib/homura/libhomura-alloc.so (the allocation sampler of
# `homura run --memory`), the man pages (man/*.1), the bash and zsh completions
# and the docs under $(DESTDIR)$(PREFIX); `make uninstall` removes them.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/homura
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# Debian's zsh looks in vendor-completions under /usr, site-functions elsewhere.
ZSHCOMPDIR ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/share/zsh/vendor-completions,$(PREFIX)/share/zsh/site-functions)
MANPAGES   := $(wildcard man/*.1)
DOCS       := README.md $(wildcard docs/*.md)
DEPLOY     := $(wildcard docs/deploy/*)
INSTALL    ?= install

install: $(BUILD)/homura $(BUILD)/libhomura-alloc.so
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(DOCDIR)/deploy
	$(INSTALL) -m 755 $(BUILD)/homura $(DESTDIR)$(BINDIR)/homura
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/lib/homura
	$(INSTALL) -m 644 $(BUILD)/libhomura-alloc.so $(DESTDIR)$(PREFIX)/lib/homura/libhomura-alloc.so
	$(INSTALL) -m 644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 completions/homura.bash $(DESTDIR)$(BASHCOMPDIR)/homura
	$(INSTALL) -m 644 completions/_homura $(DESTDIR)$(ZSHCOMPDIR)/_homura
	$(INSTALL) -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 $(DEPLOY) $(DESTDIR)$(DOCDIR)/deploy/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/homura $(DESTDIR)$(BASHCOMPDIR)/homura $(DESTDIR)$(ZSHCOMPDIR)/_homura
	rm -rf $(DESTDIR)$(PREFIX)/lib/homura
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MANPAGES)))
	rm -rf $(DESTDIR)$(DOCDIR)

.PHONY: install uninstall

# ---- fuzzing: one libFuzzer binary per tests/fuzz/fuzz_*.c, built with
# clang (ASan + UBSan, coverage for libFuzzer) into build-fuzz/; the library
# is built there with the same flags. tests/fuzz/run.sh runs them.
FUZZ_CC  ?= clang-14
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz:
	$(MAKE) BUILD=build-fuzz CC=$(FUZZ_CC) OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" fuzz-bins

fuzz-bins: $(FUZZ_BIN)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/*.h build-fuzz/libhomura.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< build-fuzz/libhomura.a $(LIBS) $(LDFLAGS)

.PHONY: fuzz fuzz-bins
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
