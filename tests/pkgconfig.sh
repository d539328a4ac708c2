#!/bin/sh
# pkgconfig.sh -- install into a staging root and build a program outside
# the tree with `pkg-config --cflags --libs cxengine`, then run it.
set -eu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
make -s install DESTDIR="$T/root" PREFIX=/opt/cx >/dev/null
cat > "$T/hello.c" <<'C'
#include <cxengine.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    cx_engine *e;
    if (cx_open(&e, NULL, 0) != CX_OK)
        return 1;
    const char *c[] = {"ann", "ann", "bob"}, *i[] = {"tea", "cup", "tea"};
    int t[] = {CX_PURCHASE, CX_VIEW, CX_PURCHASE};
    if (cx_ingest(e, 3, c, i, t, NULL, NULL, NULL) != CX_OK)
        return 2;
    const char *items[2];
    size_t n;
    if (cx_recommend(e, "bob", 2, NULL, items, NULL, NULL, &n) != CX_OK)
        return 3;
    printf("%s %s %zu %s\n", cx_version(), CX_VERSION_STRING, n, items[0]);
    cx_close(e);
    return strcmp(cx_version(), CX_VERSION_STRING) != 0;
}
C
export PKG_CONFIG_SYSROOT_DIR="$T/root"
export PKG_CONFIG_PATH="$T/root/opt/cx/lib/pkgconfig"
cc -o "$T/hello" "$T/hello.c" $(pkg-config --cflags --libs cxengine)
out=$(LD_LIBRARY_PATH="$T/root/opt/cx/lib" "$T/hello")
echo "$out" | grep -q "cup" || { echo "pkgconfig: unexpected output: $out"; exit 1; }
# The shared object carries its SONAME, and exports only cx_ symbols.
soname=$(objdump -p "$T/root/opt/cx/lib/libcxengine.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libcxengine.so.$(echo "$out" | cut -d. -f1)" ] || { echo "pkgconfig: SONAME $soname"; exit 1; }
leaked=$(nm -D --defined-only "$T/root/opt/cx/lib/libcxengine.so" | awk '{print $3}' | grep -v '^cx_' || true)
[ -z "$leaked" ] || { echo "pkgconfig: exported non-cx_ symbols: $leaked"; exit 1; }
make -s uninstall DESTDIR="$T/root" PREFIX=/opt/cx
[ ! -e "$T/root/opt/cx/lib/libcxengine.so" ] || { echo "pkgconfig: uninstall left files"; exit 1; }
echo "pkgconfig: 1 passed, 0 failed (built and ran a program against the installed library: $out)"
