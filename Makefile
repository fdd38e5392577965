# hdms-healthd: one Makefile for the daemon, its tests and its tools.
VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
WERROR   ?= 1
CC       ?= cc
PYTEST   ?= pytest-3

PKGS     := libpq hiredis libevent libmicrohttpd jansson inih zlib openssl gnutls
# libcurl: its header only; src/notify_http.c loads the library (dlopen)
# when a notifier is configured
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libcurl)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -pthread
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wwrite-strings -Wpointer-arith -Wcast-qual -Wformat=2 -Wvla \
        -Wno-missing-field-initializers -Wno-format-truncation
ifeq ($(WERROR),1)
WARN += -Werror
endif
BASE_CFLAGS := -pthread -std=c11 -D_GNU_SOURCE -DHEALTHD_VERSION='"$(VERSION)"' -Iinclude $(WARN) $(PKG_CFLAGS)

RELEASE_CFLAGS := -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
ASAN_CFLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

SRCS     := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(wildcard test/unit/check_*.c)

REL_OBJS  := $(SRCS:src/%.c=build/obj/%.o)
ASAN_OBJS := $(SRCS:src/%.c=build/asan/obj/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:src/%.c=build/asan/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=build/asan/%)

.PHONY: all asan unit test integration container-check fuzz bench demo install clean format check-format

all: build/hdms-healthd

build/hdms-healthd: $(REL_OBJS)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

build/obj/%.o: src/%.c $(wildcard include/*.h) | build/obj
	$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(CFLAGS) -c -o $@ $<

asan: build/asan/hdms-healthd $(UNIT_BINS) build/test/slow_fsync.so

build/asan/hdms-healthd: $(ASAN_OBJS)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDFLAGS)

build/asan/obj/%.o: src/%.c $(wildcard include/*.h) | build/asan/obj
	$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/check_%: test/unit/check_%.c $(ASAN_LIB_OBJS) $(wildcard include/*.h)
	$(CC) $(BASE_CFLAGS) $(CHECK_CFLAGS) $(ASAN_CFLAGS) -o $@ $< $(ASAN_LIB_OBJS) $(PKG_LIBS) $(CHECK_LIBS)

build/obj build/asan/obj build/test:
	mkdir -p $@

# LD_PRELOAD shim for the state-file tests: fsync as on a slow disk.
build/test/slow_fsync.so: test/shim/slow_fsync.c | build/test
	$(CC) -std=c11 -O2 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -fPIC -shared -o $@ $< -ldl

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; CK_DEFAULT_TIMEOUT=20 ./$$t; done

# The ASan/UBSan build, plus the release build for the valgrind test.
integration: build/asan/hdms-healthd build/hdms-healthd build/test/slow_fsync.so
	HEALTHD_BIN=$(CURDIR)/build/asan/hdms-healthd $(PYTEST) -v -p no:cacheprovider test/integration

# Every test: Check unit tests and pytest integration tests, both on the
# ASan/UBSan build.
test: asan
	./scripts/lint-tests.sh
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory integration
	./scripts/fuzz.sh 20
	$(MAKE) --no-print-directory container-check

# The Compose stack checked by a real Docker engine (needs root; when no
# engine can start it prints "CONTAINER CHECK NOT RUN" and passes, so the
# rest of the suite still counts).  scripts/container-check.sh says more.
container-check:
	./scripts/container-check.sh

# Figures, not tests: footprint, cost per check, HTTP, detection, scale, on
# the release build against a local stack; writes docs/performance.md and
# docs/performance.png.  BENCH_QUICK=1 for a shorter run.
bench: all
	/usr/bin/python3 bench/run.py

# libFuzzer targets (test/fuzz/README.md), 60 s each.
fuzz:
	./scripts/fuzz.sh 60

# Installs what is missing first (a fresh machine cannot build before that).
demo:
	./scripts/demo.sh --install-only
	$(MAKE) --no-print-directory all
	./scripts/demo.sh

install: build/hdms-healthd
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/doc/hdms-healthd
	install -m 0755 build/hdms-healthd $(DESTDIR)$(PREFIX)/bin/hdms-healthd
	install -m 0644 doc/hdms-healthd.8 $(DESTDIR)$(PREFIX)/share/man/man8/hdms-healthd.8
	install -m 0644 etc/hdms-healthd.conf $(DESTDIR)$(PREFIX)/share/doc/hdms-healthd/hdms-healthd.conf

clean:
	rm -rf build

format:
	clang-format -i src/*.c include/*.h test/unit/*.c test/fuzz/*.c test/fuzz/*.h test/shim/*.c bench/*.c

check-format:
	clang-format --dry-run --Werror src/*.c include/*.h test/unit/*.c test/fuzz/*.c test/fuzz/*.h test/shim/*.c bench/*.c
