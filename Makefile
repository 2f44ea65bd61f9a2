# podio-hook - see README.md.  `make`, `make check`, `make run`, `make bench`.
# `make run` and `make check` first install the Debian packages of
# tools/packages that are missing (`make deps`, through sudo when not root).

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man

CC      ?= cc
PKG_CONFIG ?= pkg-config

# SANITIZE=1 builds everything with ASan + UBSan (own build dir); TSAN=1
# with ThreadSanitizer (`make tsan` runs the threaded FastCGI tests on it).
ifeq ($(SANITIZE),1)
VARIANT   = san
OPTFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
SANLDFLAGS = -fsanitize=address,undefined
else ifeq ($(TSAN),1)
VARIANT   = tsan
OPTFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=thread
SANLDFLAGS = -fsanitize=thread
else
VARIANT   = opt
OPTFLAGS  = -O2 -g -D_FORTIFY_SOURCE=2
SANLDFLAGS =
endif

BUILD   = build/$(VARIANT)
# Diagnostics are cut to fixed buffers on purpose; paths that must not be
# cut check snprintf's result instead.
WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 \
          -Wno-format-truncation
DEPCFLAGS := $(shell $(PKG_CONFIG) --cflags jansson fcgi 2>/dev/null)
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread $(OPTFLAGS) $(WARN) \
           -fstack-protector-strong -MMD -MP $(DEPCFLAGS)
LDFLAGS ?=
LDFLAGS += -pthread $(SANLDFLAGS) -Wl,-z,relro,-z,now

# libfcgi, iniparser and jansson are linked statically (Debian ships the .a
# files) so the binary copied to a shared host needs only libc; libcurl is
# never linked: it is dlopen()ed on first use.
STATIC_LIBS = -Wl,-Bstatic -lfcgi -liniparser -ljansson -Wl,-Bdynamic
TEST_LIBS   = -lcmocka -ljansson -liniparser

LIB_SRC  = $(wildcard lib/*.c)
FCGI_SRC = $(wildcard fcgi/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
FCGI_OBJ = $(FCGI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/*_test.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BIN = cgi-bin/podio-hook.cgi

all: $(BIN)

# Rebuild when the variant's flags change.
$(BUILD)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || \
	  echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@

$(BUILD)/%.o: %.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/podio-hook: $(LIB_OBJ) $(FCGI_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(STATIC_LIBS)

# The deployable binary is the variant last built (compared, not dated:
# switching between SANITIZE=1 and a plain build must replace it).
$(BIN): $(BUILD)/podio-hook FORCE
	@cmp -s $< $@ || { cp $< $@.tmp && mv $@.tmp $@ && echo "cp $< $@"; }

$(BUILD)/tests/unit/%.o: CFLAGS += -Ilib
$(BUILD)/tests/spool_test: LDFLAGS += -Wl,--wrap=writev -Wl,--wrap=fdatasync \
                                -Wl,--wrap=pread
$(BUILD)/tests/claim_test: private LDFLAGS += -Wl,--wrap=clock_gettime
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

unit: $(UNIT_BIN)

# deps first, on its own: the build needs what it installs.
check: deps
	$(MAKE) all unit
	tests/check $(BUILD)

deps:
	tools/deps

# ThreadSanitizer on what runs threads: the unit tests of the writer and
# the slots, and the threaded FastCGI path under load (tests/threads).
# Its own build directory; cgi-bin/podio-hook.cgi is left alone.
TSAN_UNITS = spool_test slot_test
tsan: deps
	$(MAKE) TSAN=1 build/tsan/podio-hook \
	  $(TSAN_UNITS:%=build/tsan/tests/%)
	for t in $(TSAN_UNITS); do \
	  TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/$$t || exit 1; \
	done
	python3 tests/threads/run.py --bin build/tsan/podio-hook

# For comparison only: the same program with libcurl linked at build time
# instead of loaded on first use.
$(BUILD)/podio-hook-curl-linked: $(LIB_OBJ) $(FCGI_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(STATIC_LIBS) -Wl,--no-as-needed -lcurl

bench: all $(BUILD)/podio-hook-curl-linked
	BENCH_CURL_LINKED=$(BUILD)/podio-hook-curl-linked bench/run $(BIN)
	bench/drain $(BIN)
	bench/consumer $(BIN)

# What one uploads to a shared host: the cgi-bin/ folder, as a tarball.
VERSION := $(shell sed -n 's/^\#define PODIO_HOOK_VERSION *"\(.*\)"/\1/p' fcgi/app.h)
DIST = build/podio-hook-cgi-bin-$(VERSION).tar.gz
dist: $(BIN)
	rm -rf build/dist && mkdir -p build/dist/cgi-bin
	cp cgi-bin/.htaccess cgi-bin/podio-hook.ini.example build/dist/cgi-bin/
	strip -o build/dist/cgi-bin/podio-hook.cgi $(BIN)
	tar --owner=0 --group=0 --mode=go-w -C build/dist -czf $(DIST) \
	  cgi-bin/podio-hook.cgi cgi-bin/.htaccess cgi-bin/podio-hook.ini.example
	@echo "$(DIST):" && tar -tvzf $(DIST)

# libFuzzer targets (clang, ASan + UBSan), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	tests/fuzz/run $(FUZZ_SECONDS)

run: deps
	tools/run

stop:
	tools/stop-run

DOCDIR = $(PREFIX)/share/doc/podio-hook
EXAMPLES = $(DOCDIR)/examples

# Installed text files name the installed paths: /usr/local (the default
# PREFIX) in the tree becomes $(PREFIX) (units' ExecStart, the servers'
# configs, the man pages, the README's crontab lines).
SUBST_PREFIX = sed -e 's|/usr/local/|$(PREFIX)/|g'
# install_text SOURCE DEST: SOURCE with PREFIX substituted, mode 0644.
install_text = $(SUBST_PREFIX) $(1) >$(2).tmp && chmod 0644 $(2).tmp && \
	mv $(2).tmp $(2)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/lib/cgi-bin \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(EXAMPLES)/lighttpd $(DESTDIR)$(EXAMPLES)/apache \
	  $(DESTDIR)$(EXAMPLES)/nginx $(DESTDIR)$(EXAMPLES)/systemd
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/podio-hook
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/lib/cgi-bin/podio-hook.cgi
	$(call install_text,man/podio-hook.1,$(DESTDIR)$(MANDIR)/man1/podio-hook.1)
	$(call install_text,man/podio-hook.ini.5,$(DESTDIR)$(MANDIR)/man5/podio-hook.ini.5)
	$(call install_text,README.md,$(DESTDIR)$(DOCDIR)/README.md)
	for f in cgi-bin/podio-hook.ini.example cgi-bin/.htaccess; do \
	  $(call install_text,$$f,$(DESTDIR)$(EXAMPLES)/$${f#cgi-bin/}) || exit 1; \
	done
	for f in lighttpd/*.conf apache/*.conf nginx/*.conf \
	    systemd/podio-hook.service systemd/podio-hook.socket \
	    systemd/podio-hook-drain.service; do \
	  $(call install_text,$$f,$(DESTDIR)$(EXAMPLES)/$$f) || exit 1; \
	done
	install -d $(DESTDIR)$(PREFIX)/lib/podio-hook/handlers
	install -m 0755 examples/handlers/redis-stream \
	  examples/handlers/nats-jetstream \
	  $(DESTDIR)$(PREFIX)/lib/podio-hook/handlers/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/podio-hook \
	      $(DESTDIR)$(PREFIX)/lib/cgi-bin/podio-hook.cgi \
	      $(DESTDIR)$(MANDIR)/man1/podio-hook.1 \
	      $(DESTDIR)$(MANDIR)/man5/podio-hook.ini.5
	rm -rf $(DESTDIR)$(DOCDIR)
	rm -rf $(DESTDIR)$(PREFIX)/lib/podio-hook/handlers
	rmdir $(DESTDIR)$(PREFIX)/lib/podio-hook 2>/dev/null || true

format:
	clang-format -i lib/*.[ch] fcgi/*.[ch] tests/unit/*.c tests/fuzz/*.[ch]

clean:
	rm -rf build $(BIN) $(BIN).tmp

.PHONY: all unit check deps tsan bench fuzz dist run stop install uninstall \
	format clean FORCE
FORCE:

-include $(LIB_OBJ:.o=.d) $(FCGI_OBJ:.o=.d) \
         $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.d)
.SECONDARY:
