# daclip — one Makefile. Per-directory static libraries, one cmocka binary per tests/test_*.c,
# one CLI binary `daclip` (train/). Dependencies point one way:
#   tensor <- nn <- {clip, controller, irsde} <- train ; data stands alone.
#
#   make            build everything (build/daclip, libraries, tests)
#   make test       build and run every test (prints "N passed, N failed")
#   make san        the same suite under AddressSanitizer + UBSan, in build-san/
#   make bench      build the benchmarks in bench/ (see docs/benchmarks.md)
#   make fuzz       build the libFuzzer targets (tests/fuzz/, clang) in build-fuzz/ and run each for FUZZ_TIME
#                   seconds (default 60; scripts/fuzz.sh)
#   make clean
# Options: NATIVE=1 (-march=native instead of the portable x86-64-v2 + runtime-dispatched kernels),
#          NO_OMP=1, DEBUG=1, SAN=1 (used by `make san`), MPI=0 (no MPI: training runs in one process only).

CC      ?= gcc
BUILD   ?= build
ARCH    := $(shell uname -m)

ifeq ($(ARCH),x86_64)
  ifeq ($(NATIVE),1)
    MARCH := -march=native
  else
    # Portable baseline; hot kernels carry target_clones (avx512f/avx2+fma/default), see tensor/simd.h.
    MARCH := -march=x86-64-v2 -mtune=znver3
  endif
else
  MARCH :=
endif

OPT := -O3
ifeq ($(DEBUG),1)
  OPT := -O0 -g
endif
ifeq ($(SAN),1)
  BUILD := build-san
  OPT   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
ifeq ($(FUZZ),1)
  # libFuzzer needs clang; everything is instrumented for coverage and checked by ASan + UBSan
  CC     := clang
  BUILD  := build-fuzz
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
            -fno-sanitize-recover=undefined
  NO_OMP := 1
endif

OMPFLAG := -fopenmp
ifeq ($(NO_OMP),1)
  OMPFLAG :=
endif

PKGS     := libpng zlib libjpeg cmocka
DEP_OK   := $(shell pkg-config --exists $(PKGS) 2>/dev/null && test -e /usr/include/$(ARCH)-linux-gnu/openblas-openmp/cblas.h && { test "$(MPI)" = 0 || command -v mpicc >/dev/null; } && echo yes)
# Missing dependencies are installed while the Makefile is read, so that the include paths below are
# computed from what is really there (a fresh Debian 12 machine needs nothing but `make test`).
ifneq ($(DEP_OK),yes)
  ifeq ($(filter clean,$(MAKECMDGOALS)),)
    $(info daclip: installing missing dependencies with scripts/install-deps.sh)
    DEP_INSTALL := $(shell MPI=$(MPI) bash scripts/install-deps.sh >&2 && echo ok)
    ifneq ($(DEP_INSTALL),ok)
      $(error dependency installation failed: run scripts/install-deps.sh as root)
    endif
  endif
endif
BLAS_INC := $(firstword $(wildcard /usr/include/$(ARCH)-linux-gnu/openblas-openmp /usr/include/openblas))

# MPI (docs/distributed.md): data-parallel training when OpenMPI's compiler wrapper is there (install-deps
# installs it); MPI=0 builds the single-process version. Only train/dist.c includes mpi.h; the setting is
# recorded in a stamp so that switching MPI on or off rebuilds it.
MPI ?= 1
MPI_CFLAGS :=
MPI_LIBS :=
ifeq ($(MPI)$(FUZZ),1)
  MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
  ifneq ($(strip $(MPI_LIBS)),)
    MPI_CFLAGS := -DDACLIP_MPI $(shell mpicc --showme:compile 2>/dev/null)
  endif
endif
ifeq ($(filter clean,$(MAKECMDGOALS)),)
  MPI_STAMP := $(BUILD)/obj/train/dist.mpi
  $(shell mkdir -p $(BUILD)/obj/train && (echo '$(MPI_CFLAGS)' | cmp -s - $(MPI_STAMP) || echo '$(MPI_CFLAGS)' > $(MPI_STAMP)))
  $(BUILD)/obj/train/dist.o: $(MPI_STAMP)
endif
$(BUILD)/obj/train/dist.o: CFLAGS += $(MPI_CFLAGS)

# -fno-trapping-math: without it GCC keeps the clamps of t_expf (tensor/vmath.h) as branches on AVX2 (only
# AVX-512's masks if-convert them), so every exp loop ran scalar there; values are unchanged (no -ffast-math).
CFLAGS  += -std=c11 $(OPT) $(MARCH) $(OMPFLAG) -fno-trapping-math -Wall -Wextra -Wshadow -Wno-unused-parameter \
           -D_GNU_SOURCE -I. $(if $(BLAS_INC),-I$(BLAS_INC)) -MMD -MP
LDLIBS  += $(OMPFLAG) -lopenblas -lpng -ljpeg -lz -lpthread -lm $(MPI_LIBS)
ifeq ($(SAN),1)
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
  LDFLAGS += -fsanitize=address,undefined
  LDLIBS  += -lgomp
endif

.DEFAULT_GOAL := all

LIBDIRS := tensor nn clip controller irsde data
# link order: users before providers
LINKLIBS := $(BUILD)/libclip.a $(BUILD)/libcontroller.a $(BUILD)/libirsde.a $(BUILD)/libnn.a \
            $(BUILD)/libtensor.a $(BUILD)/libdata.a

define lib_rule
$(1)_SRC := $$(wildcard $(1)/*.c)
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC))
$(BUILD)/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(@D)
	@rm -f $$@
	$$(AR) rcs $$@ $$^
endef
$(foreach d,$(LIBDIRS),$(eval $(call lib_rule,$(d))))

TRAIN_SRC  := $(wildcard train/*.c)
TRAIN_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(TRAIN_SRC))
# train/ minus its main() is also a library for tests
TRAINLIB_OBJ := $(filter-out $(BUILD)/obj/train/daclip.o,$(TRAIN_OBJ))
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TESTUTIL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/util_*.c))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all test san bench fuzz fuzz-build clean deps check-layers demo
all: deps $(BUILD)/daclip $(TEST_BIN)

deps:
	@MPI=$(MPI) bash scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtrain.a: $(TRAINLIB_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/daclip: $(BUILD)/obj/train/daclip.o $(BUILD)/libtrain.a $(LINKLIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTUTIL_OBJ) $(BUILD)/libtrain.a $(LINKLIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libtrain.a $(LINKLIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libtrain.a $(LINKLIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: deps $(FUZZ_BIN)

fuzz:
	bash scripts/fuzz.sh

test: all check-layers
	@bash scripts/run-tests.sh $(BUILD) $(TEST_BIN)

san:
	$(MAKE) SAN=1 test

bench: deps $(BENCH_BIN) $(BUILD)/daclip

check-layers:
	@bash scripts/check-layers.sh

# the README's first command: degrade held-out photos, classify and restore them with the shipped models
demo:
	@bash scripts/demo.sh

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
