# libcxengine -- build, install, test, benchmark, demo.
# make [all] | lib | install | uninstall | check | bench | demo | clean

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
BINDIR       ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude -Ilib $(BLAS_CFLAGS) $(CFLAGS)
SQLITE_LIBS := $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)
LIBS     = $(BLAS_LIBS) $(SQLITE_LIBS) -lpthread -lm

# The version lives in the header only.
hdr_num  = $(shell sed -n 's/^\#define CX_VERSION_$(1) *\([0-9]*\).*/\1/p' include/cxengine.h)
MAJOR   := $(call hdr_num,MAJOR)
MINOR   := $(call hdr_num,MINOR)
PATCH   := $(call hdr_num,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)

B        = build
SONAME   = libcxengine.so.$(MAJOR)
SHARED   = $(B)/libcxengine.so.$(VERSION)
STATIC   = $(B)/libcxengine.a
CLI      = $(B)/cxengine

LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(LIB_SRC:lib/%.c=$(B)/lib/%.o)
TOOL_SRC = tools/synth.c tools/csvread.c tools/shopload.c
TOOL_OBJ = $(TOOL_SRC:tools/%.c=$(B)/tools/%.o)
TESTS    = $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))
BENCHES  = $(patsubst bench/%.c,%,$(wildcard bench/bench_*.c))

# Sanitizer builds reuse the sources with other flags, in their own dirs.
SAN_FLAGS_asan = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_FLAGS_tsan = -fsanitize=thread

.SECONDARY:

.PHONY: all lib tools install uninstall check check-c check-asan check-tsan \
        check-pkgconfig check-python check-notebook check-lua check-nginx \
        bench demo clean

all: lib tools

lib: $(SHARED) $(STATIC) $(B)/cxengine.pc

$(B)/lib/%.o: lib/%.c $(wildcard lib/*.h) include/cxengine.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DCX_BUILDING_LIBRARY -c $< -o $@

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $(LIB_OBJ) $(LIBS)
	ln -sf libcxengine.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libcxengine.so

$(STATIC): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(B)/cxengine.pc: pkgconfig/cxengine.pc.in include/cxengine.h
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(B)/tools/%.o: tools/%.c $(wildcard tools/*.h) include/cxengine.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itools -c $< -o $@

tools: $(CLI)

$(CLI): $(B)/tools/cxengine.o $(TOOL_OBJ) $(STATIC)
	$(CC) -o $@ $^ $(LIBS)

install: lib tools
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	           $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/cxengine.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libcxengine.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcxengine.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/cxengine.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/cxengine.pc
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cxengine.h \
	      $(DESTDIR)$(LIBDIR)/libcxengine.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libcxengine.so \
	      $(DESTDIR)$(LIBDIR)/libcxengine.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/cxengine.pc $(DESTDIR)$(BINDIR)/cxengine

# ---------------------------------------------------------------- tests

$(B)/tests/%: tests/%.c tests/testutil.h $(STATIC) $(TOOL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itools -o $@ $< $(TOOL_OBJ) $(STATIC) -lcmocka $(LIBS)

define san_build
$(B)/$(1)/lib/%.o: lib/%.c $(wildcard lib/*.h) include/cxengine.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $$(SAN_FLAGS_$(1)) -DCX_BUILDING_LIBRARY -c $$< -o $$@
$(B)/$(1)/tools/%.o: tools/%.c $$(wildcard tools/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $$(SAN_FLAGS_$(1)) -Itools -c $$< -o $$@
$(B)/$(1)/tests/%: tests/%.c tests/testutil.h $$(LIB_SRC:lib/%.c=$(B)/$(1)/lib/%.o) $$(TOOL_SRC:tools/%.c=$(B)/$(1)/tools/%.o)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $$(SAN_FLAGS_$(1)) -Itools -o $$@ $$< \
	    $$(LIB_SRC:lib/%.c=$(B)/$(1)/lib/%.o) $$(TOOL_SRC:tools/%.c=$(B)/$(1)/tools/%.o) -lcmocka $$(LIBS)
endef
$(eval $(call san_build,asan))
$(eval $(call san_build,tsan))

# Tests that exercise threads run again under ThreadSanitizer.
TSAN_TESTS = test_threads test_stress test_customer test_datadir

check: check-c check-asan check-tsan check-cli check-pkgconfig check-python \
       check-notebook check-lua check-nginx check-fuzz
	@echo "make check: all passed"

# Lua: the FFI binding under LuaJIT, then nginx with the Lua module serving
# a synthetic shop on 127.0.0.1 (started and stopped by the script).
check-lua: lib
	CXENGINE_LIB=$(abspath $(B))/libcxengine.so luajit bindings/lua/test.lua

check-nginx: lib tools
	CXENGINE_LIB=$(abspath $(B))/libcxengine.so CXENGINE_CLI=$(abspath $(CLI)) \
	    sh tests/nginx.sh

# Python: Debian's interpreter (it has numpy, pandas, pytest).
PYTHON ?= /usr/bin/python3

check-python: lib tools
	cd bindings/python && CXENGINE_LIB=$(abspath $(B))/libcxengine.so \
	    CXENGINE_CLI=$(abspath $(CLI)) $(PYTHON) -m pytest -q tests

# The example notebook, executed headless; a failing cell fails the build.
check-notebook: lib tools
	@mkdir -p $(B)/examples
	cd examples && CXENGINE_LIB=$(abspath $(B))/libcxengine.so \
	    CXENGINE_CLI=$(abspath $(CLI)) \
	    PYDEVD_DISABLE_FILE_VALIDATION=1 jupyter nbconvert --to notebook \
	    --execute notebook.ipynb --output $(abspath $(B))/examples/notebook.ipynb

# The numerical tests run again on the portable kernels (CX_KERNELS=c),
# which AVX2 machines would otherwise never execute.
PORTABLE_TESTS = test_als test_recommend test_live test_kernels

check-c: $(TESTS:%=$(B)/tests/%) $(CLI)
	@set -e; for t in $(TESTS); do echo "== $$t"; \
	    CX_CLI=$(CLI) $(B)/tests/$$t; done; \
	for t in $(PORTABLE_TESTS); do echo "== portable kernels: $$t"; \
	    CX_KERNELS=c $(B)/tests/$$t; done

check-asan: $(TESTS:%=$(B)/asan/tests/%)
	@set -e; for t in $(TESTS); do echo "== asan $$t"; \
	    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(B)/asan/tests/$$t; done

check-tsan: $(TSAN_TESTS:%=$(B)/tsan/tests/%)
	@set -e; for t in $(TSAN_TESTS); do echo "== tsan $$t"; \
	    OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 \
	    $(B)/tsan/tests/$$t; done

check-cli: $(CLI)
	@sh tests/cli.sh $(CLI)

check-pkgconfig: lib tools
	@sh tests/pkgconfig.sh

# ---------------------------------------------------------------- fuzz

# libFuzzer targets, one per fuzz/fuzz_*.c, each built by clang with the
# sources in FUZZ_SRC_<target> (and FUZZ_CFLAGS_/FUZZ_LIBS_<target>).  Each
# runs FUZZ_SECONDS on $(B)/fuzz/corpus-<name>, seeded from fuzz/corpus/<name>
# so the seeds in git stay as they are.  A crash, leak or UB report fails
# the target and leaves the input in $(B)/fuzz/<target>-crash-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_TARGETS  = $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SRC_fuzz_spark  = lib/spark.c
FUZZ_SRC_fuzz_csv    = tools/csvread.c
# The manifest reader lives in the library: link all of it.
FUZZ_SRC_fuzz_snapshot    = $(LIB_SRC)
FUZZ_CFLAGS_fuzz_snapshot = $(BLAS_CFLAGS)
FUZZ_LIBS_fuzz_snapshot   = $(LIBS)
# A 7-byte read buffer: records cross refills everywhere.
FUZZ_CFLAGS_fuzz_csv = -DCSV_BUF_SIZE=7

define fuzz_build
$(B)/fuzz/$(1): fuzz/$(1).c $$(FUZZ_SRC_$(1)) $$(wildcard lib/*.h tools/*.h) include/cxengine.h
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) -std=c11 -D_GNU_SOURCE $$(WARN) -Iinclude -Ilib -Itools \
	    $$(FUZZ_FLAGS) $$(FUZZ_CFLAGS_$(1)) -o $$@ $$< $$(FUZZ_SRC_$(1)) $$(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_build,$(t))))

.PHONY: check-fuzz
check-fuzz: $(FUZZ_TARGETS:%=$(B)/fuzz/%)
	@set -e; for t in $(FUZZ_TARGETS); do n=$${t#fuzz_}; \
	    echo "== fuzz $$t, $(FUZZ_SECONDS) s"; \
	    mkdir -p $(B)/fuzz/corpus-$$n; \
	    if [ -d fuzz/corpus/$$n ]; then cp fuzz/corpus/$$n/* $(B)/fuzz/corpus-$$n/; fi; \
	    $(B)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 \
	        -artifact_prefix=$(B)/fuzz/$$t- $(B)/fuzz/corpus-$$n; \
	done

# ---------------------------------------------------------------- bench

$(B)/bench/%: bench/%.c bench/benchutil.h $(STATIC) $(TOOL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itools -o $@ $< $(TOOL_OBJ) $(STATIC) $(LIBS)

bench: $(BENCHES:%=$(B)/bench/%) lib tools
	@mkdir -p $(B)/bench; set -e; for b in $(BENCHES); do $(B)/bench/$$b; done
	CXENGINE_LIB=$(abspath $(B))/libcxengine.so $(PYTHON) bench/bench_python.py
	CXENGINE_LIB=$(abspath $(B))/libcxengine.so CXENGINE_CLI=$(abspath $(CLI)) \
	    sh bench/bench_lua.sh

# ---------------------------------------------------------------- demo

demo:
	@sh tools/demo.sh

clean:
	rm -rf $(B)
