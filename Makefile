# petools: hand-written Makefile.
#
#   make            build the library and the tools into $(BUILD)/
#   make check      install missing Debian packages, build, run every test
#   make demo       install missing packages, build, make the figures in demo/
#   make install    PREFIX=/usr/local DESTDIR= (binaries and man pages)
#   make check-asan the test suite built with AddressSanitizer + UBSan, then
#                   the threaded runs built with ThreadSanitizer (tests/tsan.sh)
#   make check-valgrind  a subset of the tools under valgrind's memcheck
#   make bench      speed and memory against the targets (minutes; bench/run)
#   make check-bench     one tiny benchmark configuration (keeps bench/ working)
#   make fuzz       libFuzzer on the reader (FUZZ_SECONDS=60, clang)
#   make regen      rewrite the golden outputs in tests/golden (review the diff!)
#
# CC, CFLAGS, CPPFLAGS, LDFLAGS, LIBS and PKG_CONFIG may be overridden.

VERSION := $(shell sed -n 's/^\#define PE_VERSION "\(.*\)"/\1/p' include/pe_version.h)

CC ?= cc
CFLAGS ?= -O2 -g -Wall -Wextra -std=c11
CPPFLAGS ?=
LDFLAGS ?=
LIBS ?=
PKG_CONFIG ?= pkg-config
BUILD ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/petools
PYTHON ?= /usr/bin/python3

# Libraries come from pkg-config (Debian keeps hdf5.h in a subfolder).
# Recursive '=' so that the flags are read after `make deps` has run.
PE_PKGS = hdf5 fftw3 lapacke openblas
PE_CPPFLAGS = -Iinclude -D_XOPEN_SOURCE=700 $(shell $(PKG_CONFIG) --cflags $(PE_PKGS))
PE_LIBS = $(shell $(PKG_CONFIG) --libs $(PE_PKGS)) -lpthread -lm

# Every src/*.c that is not a library module (pe_*.c) is a tool's main.
TOOLS = $(sort $(patsubst src/%.c,%,$(filter-out src/pe_%.c,$(wildcard src/*.c))))
LIB_SRC = $(sort $(wildcard src/pe_*.c))
LIB_OBJ = $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
LIB = $(BUILD)/libpetools.a
TOOL_BIN = $(TOOLS:%=$(BUILD)/%)
TEST_SRC = $(sort $(wildcard tests/test_*.c))
# Fixture generators (tests/mkfix*.c) and reference programs (tests/ref*.c)
# are built with the tests; tests/run.sh runs every generator first.
AUX_SRC = $(sort $(wildcard tests/mkfix*.c tests/ref*.c))
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(AUX_SRC:tests/%.c=$(BUILD)/tests/%)
MAN = $(wildcard man/*.1 man/*.5 man/*.7)

ALL_CPPFLAGS = $(PE_CPPFLAGS) $(CPPFLAGS)

.PHONY: all deps check test check-asan check-valgrind bench check-bench regen install uninstall clean demo fuzz FUZZ_FORCE FORCE
.SUFFIXES:
.SECONDARY:

all: $(LIB) $(TOOL_BIN)

# Objects are rebuilt when the compiler or its flags change, not only the sources.
$(BUILD)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(ALL_CPPFLAGS) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ 2>/dev/null || \
	  echo '$(CC) $(ALL_CPPFLAGS) $(CFLAGS) $(LDFLAGS)' >$@

$(BUILD)/obj/%.o: src/%.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%: $(BUILD)/obj/%.o $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(PE_LIBS) $(LIBS)

$(BUILD)/tests/%.o: tests/%.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Itests $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(PE_LIBS) $(LIBS)

# Debian packages: build, run time (gnuplot), tests (python3-numpy, python3-h5py
# for the dumper's tests, groff for the man page check).
deps:
	@sh scripts/install-deps

check: deps
	@$(MAKE) --no-print-directory test

test: all $(TEST_BIN)
	@LC_ALL=C sh tests/run.sh $(BUILD) $(PYTHON)

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/asan \
	  CFLAGS="-O1 -g -std=c11 -Wall -Wextra -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" test
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan CFLAGS="-O1 -g -std=c11 -Wall -Wextra -fsanitize=thread" \
	  LDFLAGS="-fsanitize=thread" all $(BUILD)/tsan/tests/mkfixtures $(BUILD)/tsan/tests/mkfix_attn $(BUILD)/tsan/tests/mkfix_entropy
	@LC_ALL=C sh tests/tsan.sh $(BUILD)/tsan

check-valgrind: deps
	@sh scripts/install-deps valgrind
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@LC_ALL=C sh tests/valgrind.sh $(BUILD)

# Benchmarks never run in `make check`: they take minutes and want an idle machine.
bench: all
	@CC="$(CC)" LC_ALL=C $(PYTHON) bench/run $(BUILD)

check-bench: all
	@CC="$(CC)" LC_ALL=C $(PYTHON) bench/run --tiny $(BUILD)

# The tools on the shipped real dump, and the figures, in demo/.
demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo $(BUILD)

# libFuzzer on the reader (tests/fuzz_reader.c), seeded with the fixtures.
# Crashes land in $(BUILD)/fuzz/crashes; copy them to tests/corpus/.  HDF5
# answers a failed malloc with an error, so huge requests return NULL here.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
FUZZ_CC ?= clang
FUZZ_DIR = $(BUILD)/fuzz
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CC=$(FUZZ_CC) \
	  CFLAGS="-O1 -g -std=c11 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" $(FUZZ_DIR)/libpetools.a $(FUZZ_DIR)/tests/mkfixtures
	$(FUZZ_CC) $(ALL_CPPFLAGS) -O1 -g -std=c11 -fsanitize=fuzzer,address,undefined \
	  -o $(FUZZ_DIR)/fuzz_reader tests/fuzz_reader.c $(FUZZ_DIR)/libpetools.a $(PE_LIBS)
	@rm -rf $(FUZZ_DIR)/seeds && mkdir -p $(FUZZ_DIR)/seeds $(FUZZ_DIR)/corpus $(FUZZ_DIR)/crashes
	@$(FUZZ_DIR)/tests/mkfixtures $(FUZZ_DIR)/seeds && find $(FUZZ_DIR)/seeds -size +200k -delete
	@cp tests/corpus/* $(FUZZ_DIR)/seeds/ 2>/dev/null || true
	ASAN_OPTIONS=allocator_may_return_null=1:$(ASAN_OPTIONS) $(FUZZ_DIR)/fuzz_reader -max_total_time=$(FUZZ_SECONDS) -max_len=262144 -rss_limit_mb=4096 \
	  -timeout=20 -fork=$(FUZZ_JOBS) -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
	  -artifact_prefix=$(FUZZ_DIR)/crashes/ $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds

regen: all $(TEST_BIN)
	@LC_ALL=C PE_REGEN=1 sh tests/run.sh $(BUILD) $(PYTHON)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 755 $(TOOL_BIN) $(DESTDIR)$(BINDIR)
	sed 's/^INSTALLED_VERSION = None$$/INSTALLED_VERSION = "$(VERSION)"/' scripts/pe-dump >$(DESTDIR)$(BINDIR)/pe-dump
	chmod 755 $(DESTDIR)$(BINDIR)/pe-dump
	install -m 755 scripts/pemerge scripts/pe-layer-cost $(DESTDIR)$(BINDIR)
	$(if $(wildcard man/*.1),install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1)
	$(if $(wildcard man/*.5),install -m 644 $(wildcard man/*.5) $(DESTDIR)$(MANDIR)/man5)
	$(if $(wildcard man/*.7),install -d $(DESTDIR)$(MANDIR)/man7 && install -m 644 $(wildcard man/*.7) $(DESTDIR)$(MANDIR)/man7)
	install -d $(DESTDIR)$(DATADIR)
	install -m 644 $(wildcard scripts/pe-fig-*.gp) $(DESTDIR)$(DATADIR)

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(BINDIR)/pe-dump $(DESTDIR)$(BINDIR)/pemerge $(DESTDIR)$(BINDIR)/pe-layer-cost
	rm -f $(patsubst man/%,$(DESTDIR)$(MANDIR)/man1/%,$(wildcard man/*.1))
	rm -f $(patsubst man/%,$(DESTDIR)$(MANDIR)/man5/%,$(wildcard man/*.5))
	rm -f $(patsubst man/%,$(DESTDIR)$(MANDIR)/man7/%,$(wildcard man/*.7))
	rm -f $(patsubst scripts/%,$(DESTDIR)$(DATADIR)/%,$(wildcard scripts/pe-fig-*.gp))

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(TOOLS:%=$(BUILD)/obj/%.d) $(TEST_BIN:%=%.d)
