# postdate: plain GNU make. `make run` starts everything; `make test` checks it.

PREFIX  ?= /usr/local
DESTDIR ?=
PORT    ?= 8080

CC      ?= cc
CFLAGS  ?= -O2 -g
WARNINGS = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes
PKGS     = libcurl sqlite3 json-c libcrypto
CPPFLAGS += -Ilib -D_GNU_SOURCE
ALL_CFLAGS = -std=c11 $(WARNINGS) $(CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lfcgi -lpthread

# `make test SANITIZE=1` builds everything with ASan and UBSan, with clang:
# its one runtime writes every report where ASAN_OPTIONS or UBSAN_OPTIONS
# log_path says (beside gcc's libasan, libubsan writes only to stderr).
ifeq ($(SANITIZE),1)
CC          = clang
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif

# What the objects were built with. The file changes only when the flags
# do (SANITIZE=1 or not, CC, CFLAGS), and everything built depends on it,
# so switching rebuilds everything rather than mixing the two builds.
BUILD_FLAGS = $(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS)

LIB_OBJS = lib/log.o lib/clock.o lib/config.o lib/timeparse.o lib/tz.o lib/cron.o lib/fields.o lib/form.o \
           lib/jsonreq.o lib/id.o lib/message.o lib/store.o lib/auth.o lib/http.o lib/longpoll.o \
           lib/render.o lib/report.o lib/redact.o lib/sign.o lib/retry.o lib/delivery.o lib/target.o lib/commit.o
CGI_PROGS  = cgi-bin/schedule cgi-bin/status cgi-bin/cancel cgi-bin/health cgi-bin/queue cgi-bin/recurring
BIN_PROGS  = bin/dispatch
BENCH_PROGS = bench/baseline_insert bench/baseline_multi bench/baseline_queue
UNIT_TESTS = tests/unit/test_timeparse tests/unit/test_tz tests/unit/test_cron tests/unit/test_redact tests/unit/test_form tests/unit/test_jsonreq \
             tests/unit/test_config tests/unit/test_message tests/unit/test_store \
             tests/unit/test_delivery_policy tests/unit/test_target tests/unit/test_longpoll

.PHONY: all deps run test bench unit-test integration-test install clean fuzz FORCE

all: $(CGI_PROGS) $(BIN_PROGS) $(BENCH_PROGS)

FORCE:

.build-flags: FORCE
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@

HEADERS = lib/postdate.h lib/request.h lib/store.h lib/delivery.h

lib/%.o: lib/%.c $(HEADERS) sql/migrations.h .build-flags
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# The migrations are compiled into the store, in the order of their
# numbers, so a program never runs without them.
MIGRATIONS = $(sort $(wildcard sql/[0-9][0-9][0-9]-*.sql))
sql/migrations.h: $(MIGRATIONS)
	{ echo '/* generated from sql/NNN-*.sql by make */'; \
	  echo 'static const struct { const char *name; const char *sql; } migrations[] = {'; \
	  for f in $(MIGRATIONS); do \
	    echo "{ \"$$(basename $$f .sql)\","; \
	    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $$f; \
	    echo '},'; \
	  done; \
	  echo '};'; } > $@

lib/libpostdate.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

cgi-bin/%: cgi-bin/%.c lib/libpostdate.a .build-flags
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< lib/libpostdate.a $(LDLIBS)

bin/%: bin/%.c lib/libpostdate.a .build-flags
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< lib/libpostdate.a $(LDLIBS)

bench/baseline_insert: bench/baseline_insert.c .build-flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -lfcgi -lsqlite3

bench/baseline_queue: bench/baseline_queue.c .build-flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -lfcgi -lsqlite3 -ljson-c

bench/baseline_multi: bench/baseline_multi.c .build-flags
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -lcurl

# Not part of `make test`: the figures need a quiet machine.
bench: all
	@sh bench/run.sh

tests/unit/test_tz: tests/unit/tz_cases.h
tests/unit/test_cron: tests/unit/cron_cases.h

tests/unit/test_%: tests/unit/test_%.c tests/unit/unit.c tests/unit/unit.h lib/libpostdate.a .build-flags
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< tests/unit/unit.c lib/libpostdate.a $(LDLIBS)

# Installs the Debian packages that are missing (and nothing when none is).
deps:
	@sh etc/deps.sh

# On a terminal the stack runs as a job of its own (bash -m gives it its own
# process group and the terminal), so that Ctrl-C reaches it and not make:
# make would die of the SIGINT and print "Interrupt" however cleanly the
# stack stopped. DIR=... keeps a second instance's state apart from var/.
run: deps all
	@if [ -t 0 ]; then \
		PORT=$(PORT) bash -mc 'bin/postdate-stack "$$@"; exit $$?' run $(if $(DIR),--dir "$(DIR)"); \
	else \
		PORT=$(PORT) bin/postdate-stack $(if $(DIR),--dir "$(DIR)"); \
	fi

test: deps all $(UNIT_TESTS)
	@SANITIZE=$(SANITIZE) sh tests/run.sh

unit-test: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do ./$$t || exit 1; done

# libFuzzer harnesses (tests/fuzz), built with clang into their own folder
# so that they never mix with the objects above. `make fuzz` runs each for
# FUZZ_SECONDS, one after another, from its seed corpus.
FUZZ_SECONDS ?= 60
FUZZ_DIR     = tests/fuzz/build
FUZZ_CFLAGS := -std=c11 $(WARNINGS) -g -O1 -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_PROGS   = $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/lib/%.o: lib/%.c $(HEADERS) sql/migrations.h
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/libpostdate.a: $(LIB_OBJS:lib/%=$(FUZZ_DIR)/lib/%)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libpostdate.a
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libpostdate.a $(LDLIBS)

fuzz: deps $(FUZZ_PROGS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/postdate/cgi-bin $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(PREFIX)/share/postdate/www $(DESTDIR)$(PREFIX)/share/postdate/etc
	install -m 755 $(CGI_PROGS) $(DESTDIR)$(PREFIX)/lib/postdate/cgi-bin/
	$(if $(BIN_PROGS),install -m 755 $(BIN_PROGS) $(DESTDIR)$(PREFIX)/bin/)
	install -m 644 www/* $(DESTDIR)$(PREFIX)/share/postdate/www/
	install -m 644 etc/nginx.conf etc/apache.conf etc/postdate.conf.example $(DESTDIR)$(PREFIX)/share/postdate/etc/
	install -d $(DESTDIR)$(PREFIX)/share/postdate/cron
	install -m 644 cron/* $(DESTDIR)$(PREFIX)/share/postdate/cron/

clean:
	rm -f lib/*.o lib/libpostdate.a sql/migrations.h $(CGI_PROGS) $(BIN_PROGS) $(BENCH_PROGS) $(UNIT_TESTS)
	rm -f .build-flags
	rm -rf $(FUZZ_DIR)
