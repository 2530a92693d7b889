# ctune build. `make` builds build/ctune (the CLI), build/libctune.a (the
# library) and build/ctune-tests (the unit tests) with gcc.
#   make test   installs dependencies, builds the release and the sanitizer
#               (clang, ASan+UBSan) variants, runs every test suite
#   make demo   installs dependencies, builds, runs the demo
#   make clang  builds with clang into build-clang (warnings are errors)
#   make asan   the sanitizer build into build-asan
# Variables: BUILD (output dir), CC, SAN=1 (sanitizers), OPT, MPI=0 (build
# without MPI even when mpicc is found; see docs/distributed.md).

BUILD ?= build
CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
OPT ?= -O2
SAN ?= 0

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -fopenmp -Iinclude -MMD -MP $(CFLAGS)
LDLIBS_ALL := -lcjson -lyaml -lopenblas -lpcre2-8 -lutf8proc -lcurl -lm -lpthread $(LDLIBS)
LDFLAGS_ALL := -fopenmp $(LDFLAGS)
# MPI for data-parallel training (src/base/comm_mpi.c): on when OpenMPI's
# mpicc is found; its --showme flags work with gcc and clang alike.
MPI ?= 1
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
CFLAGS_ALL += -DCT_HAVE_MPI $(MPI_CFLAGS)
LDLIBS_ALL += $(MPI_LIBS)
endif
endif
ifeq ($(SAN),1)
CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_ALL += -fsanitize=address,undefined
endif

LIB_SRC := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/*.c))
# Small helper programs the tests drive (one .c each -> $(BUILD)/tools/NAME).
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOLS := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all clean test demo deps asan clang check-assets fuzz
.SECONDARY:
all: $(BUILD)/ctune $(BUILD)/libctune.a $(BUILD)/ctune-tests $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libctune.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/ctune: $(CLI_OBJ) $(BUILD)/libctune.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libctune.a $(LDLIBS_ALL)

$(BUILD)/ctune-tests: $(TEST_OBJ) $(BUILD)/libctune.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $(TEST_OBJ) $(BUILD)/libctune.a $(LDLIBS_ALL)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(BUILD)/libctune.a
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libctune.a $(LDLIBS_ALL)

deps:
	@scripts/install-deps.sh --python

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang SAN=1 OPT=-O1 all

clang:
	@$(MAKE) --no-print-directory BUILD=build-clang CC=clang all

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory asan
	@tests/run.sh

# Extra checks that need ../shared/assets (CI runs them when the folder exists).
check-assets: all
	@scripts/fetch-model.sh >/dev/null
	@scripts/fetch-gemma.sh >/dev/null
	@tests/assets.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

clean:
	rm -rf build build-asan build-clang build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/obj/%.d)

# libFuzzer targets (tests/fuzz), FUZZ_SECONDS each (default 60).
fuzz:
	@scripts/fuzz.sh
