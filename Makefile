# postdate: plain GNU make. `make run` starts everything; `make test` checks it.

PREFIX  ?= /usr/local
DESTDIR ?=
PORT    ?= 8080

# Where `make install` puts things (FHS), and the host paths the installed
# configurations, units and scripts name (each rewritten at install time
# from the defaults the source files carry). The configuration lives in
# /etc whatever PREFIX is, as the programs' default (-c) says.
SYSCONFDIR ?= /etc
RUNDIR     ?= /run/postdate
STATEDIR   ?= /var/lib/postdate
LOGDIR     ?= /var/log/postdate
POSTDATE_USER ?= postdate
BINDIR      = $(PREFIX)/bin
SBINDIR     = $(PREFIX)/sbin
CGIDIR      = $(PREFIX)/lib/postdate/cgi-bin
DATADIR     = $(PREFIX)/share/postdate
MANDIR      = $(PREFIX)/share/man
UNITDIR     = $(PREFIX)/lib/systemd/system
TMPFILESDIR = $(PREFIX)/lib/tmpfiles.d
CONFDIR     = $(SYSCONFDIR)/postdate

CC      ?= cc
CFLAGS  ?= -O2 -g
WARNINGS = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes
PKGS     = libcurl sqlite3 json-c libcrypto libpq
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

LIB_OBJS = lib/log.o lib/clock.o lib/config.o lib/timeparse.o lib/tz.o lib/cron.o lib/fields.o lib/form.o lib/envelope.o \
           lib/jsonreq.o lib/id.o lib/message.o lib/store.o lib/store_sqlite.o lib/store_common.o \
           $(patsubst %.c,%.o,$(wildcard lib/store_pg*.c)) lib/auth.o lib/http.o lib/longpoll.o \
           lib/render.o lib/jsonw.o lib/report.o lib/redact.o lib/sign.o lib/retry.o lib/delivery.o lib/target.o lib/origin.o lib/commit.o lib/metrics.o lib/writer_turn.o
CGI_PROGS  = cgi-bin/schedule cgi-bin/status cgi-bin/cancel cgi-bin/health cgi-bin/queue \
             cgi-bin/topics cgi-bin/metrics cgi-bin/recurring
BIN_PROGS  = bin/dispatch bin/postdate
BENCH_PROGS = bench/baseline_insert bench/baseline_multi bench/baseline_queue
UNIT_TESTS = tests/unit/test_timeparse tests/unit/test_tz tests/unit/test_cron tests/unit/test_redact tests/unit/test_form tests/unit/test_jsonreq tests/unit/test_jsonw \
             tests/unit/test_config tests/unit/test_message tests/unit/test_envelope tests/unit/test_store \
             tests/unit/test_delivery_policy tests/unit/test_target tests/unit/test_origin tests/unit/test_longpoll tests/unit/test_metrics tests/unit/test_writer_turn

.PHONY: all deps run test test-pg bench unit-test integration-test install uninstall clean fuzz FORCE

all: $(CGI_PROGS) $(BIN_PROGS) $(BENCH_PROGS)

FORCE:

.build-flags: FORCE
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@

HEADERS = lib/postdate.h lib/request.h lib/store.h lib/store_engine.h lib/store_pg.h lib/delivery.h

lib/%.o: lib/%.c $(HEADERS) sql/migrations.h sql/pg_migrations.h .build-flags
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

# The PostgreSQL engine's migrations (sql/pg/NNN-*.sql), the same way; a
# file's number is the schema version it brings the database to.
PG_MIGRATIONS = $(sort $(wildcard sql/pg/[0-9][0-9][0-9]-*.sql))
sql/pg_migrations.h: $(PG_MIGRATIONS)
	{ echo '/* generated from sql/pg/NNN-*.sql by make */'; \
	  echo 'static const struct { const char *name; const char *sql; } pg_migrations[] = {'; \
	  for f in $(PG_MIGRATIONS); do \
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

# The same on PostgreSQL 15, in a cluster of its own started and stopped
# by tests/run-pg.sh: the store's unit tests and the integration tests
# (PG_TESTS=SUBSTRING... runs only the integration tests so named).
test-pg: deps all $(UNIT_TESTS)
	@sh tests/run-pg.sh $(PG_TESTS)

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

$(FUZZ_DIR)/lib/%.o: lib/%.c $(HEADERS) sql/migrations.h sql/pg_migrations.h
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/libpostdate.a: $(LIB_OBJS:lib/%=$(FUZZ_DIR)/lib/%)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libpostdate.a
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libpostdate.a $(LDLIBS)

fuzz: deps $(FUZZ_PROGS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

# The source files name the default paths; installed copies name these
# (and the user the programs run as), through this sed script.
INSTALL_PATHS = 's|/usr/local/lib/postdate/cgi-bin|$(CGIDIR)|g' \
                's|/usr/local/lib/tmpfiles.d|$(TMPFILESDIR)|g' \
                's|/usr/local/share/postdate|$(DATADIR)|g' \
                's|/usr/local/bin|$(BINDIR)|g' \
                's|/usr/local/sbin|$(SBINDIR)|g' \
                's|/etc/postdate|$(SYSCONFDIR)/postdate|g' \
                's|/run/postdate|$(RUNDIR)|g' \
                's|/var/lib/postdate|$(STATEDIR)|g' \
                's|/var/log/postdate|$(LOGDIR)|g' \
                's/\(User=\|Group=\|SocketUser=\|^user=\|-u \|^\tsu \)postdate\b/\1$(POSTDATE_USER)/' \
                's/^d \([^ ]* [0-7]*\) postdate postdate /d \1 $(POSTDATE_USER) $(POSTDATE_USER) /'
MAN_PAGES  = $(wildcard man/*.[1-8])
UNITS      = $(wildcard cron/*.service cron/*.socket cron/*.timer)
SITE_CONFS = etc/nginx.conf etc/apache.conf

# install-edited SOURCE DEST MODE: SOURCE with the installed paths, written
# whole before it replaces DEST.
install-edited = echo "install $(1) -> $(2)" && sed -f .install-paths.sed $(1) > $(2).tmp && \
                 chmod $(3) $(2).tmp && mv -f $(2).tmp $(2)

# Files only. The user, folders and configuration come from postdate-setup
# (as root, once), so that a packager's `make install DESTDIR=...` makes no
# user. The site configurations in $(CONFDIR) are the operator's to edit:
# one that was changed is kept, and the new one put beside it as .new
# (not so the logrotate file: logrotate would read a .new beside it too).
install: all
	@printf '%s\n' $(INSTALL_PATHS) > .install-paths.sed
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(CGIDIR) \
	           $(DESTDIR)$(DATADIR)/www $(DESTDIR)$(CONFDIR) $(DESTDIR)$(UNITDIR) \
	           $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 755 $(CGI_PROGS) $(DESTDIR)$(CGIDIR)/
	install -m 755 $(BIN_PROGS) $(DESTDIR)$(BINDIR)/
	@$(call install-edited,bin/postdate-setup,$(DESTDIR)$(SBINDIR)/postdate-setup,755)
	install -m 644 www/* $(DESTDIR)$(DATADIR)/www/
	@$(call install-edited,cron/postdate.crontab,$(DESTDIR)$(DATADIR)/postdate.crontab,644)
	@$(call install-edited,cron/postdate.tmpfiles,$(DESTDIR)$(TMPFILESDIR)/postdate.conf,644)
	@for f in $(UNITS); do \
		$(call install-edited,$$f,$(DESTDIR)$(UNITDIR)/$${f#cron/},644) || exit 1; \
	done
	@$(call install-edited,etc/postdate.conf.example,$(DESTDIR)$(CONFDIR)/postdate.conf.example,644)
	@$(call install-edited,etc/postdate.logrotate,$(DESTDIR)$(SYSCONFDIR)/logrotate.d/postdate,644)
	@for f in $(SITE_CONFS); do \
		dest=$(DESTDIR)$(CONFDIR)/$${f#etc/}; \
		sed -f .install-paths.sed $$f > $$dest.new && chmod 644 $$dest.new || exit 1; \
		if [ ! -e $$dest ] || cmp -s $$dest $$dest.new; then \
			echo "install $$f -> $$dest"; mv -f $$dest.new $$dest; \
		else echo "install: kept $$dest as you changed it; the new one is $$dest.new"; fi; \
	done
	@for m in $(MAN_PAGES); do \
		s=$${m##*.}; echo "install $$m -> $(DESTDIR)$(MANDIR)/man$$s/"; \
		install -d $(DESTDIR)$(MANDIR)/man$$s && install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
	@rm -f .install-paths.sed

# Removes what `make install` put in place except $(CONFDIR), the
# configuration, the database and the logs: the operator's.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(CGIDIR)/,$(notdir $(CGI_PROGS))) \
	      $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BIN_PROGS))) \
	      $(DESTDIR)$(SBINDIR)/postdate-setup \
	      $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNITS))) \
	      $(DESTDIR)$(TMPFILESDIR)/postdate.conf $(DESTDIR)$(SYSCONFDIR)/logrotate.d/postdate \
	      $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -rf $(DESTDIR)$(DATADIR)
	-rmdir $(DESTDIR)$(PREFIX)/lib/postdate/cgi-bin $(DESTDIR)$(PREFIX)/lib/postdate 2>/dev/null

clean:
	rm -f lib/*.o lib/libpostdate.a sql/migrations.h sql/pg_migrations.h $(CGI_PROGS) $(BIN_PROGS) $(BENCH_PROGS) $(UNIT_TESTS)
	rm -f .build-flags .install-paths.sed
	rm -rf $(FUZZ_DIR)
