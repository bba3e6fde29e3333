#!/usr/bin/env bash
# Install crmpi into a fresh prefix and build a user program against the
# installed copy, once with pkg-config and once with find_package(crmpi):
# an installed copy must work from any prefix, after being moved too.
set -euo pipefail
build=$1; src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# Move the prefix: nothing may have the install path baked in.
mv "$work/prefix" "$work/moved"
prefix="$work/moved"
libdir=$(dirname "$(find "$prefix" -name cr.pc | head -n1)")/..
test -f "$prefix/include/cr.h" || { echo "FAIL: cr.h not installed"; exit 1; }

cat > "$work/app.c" <<'C'
#include <cr.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char *p = crmalloc(100);
    if (!p) { printf("crmalloc failed\n"); return 1; }
    strcpy(p, "persistent");
    printf("%s %s\n", p, cr_strerror(CR_ECORRUPT));
    crfree(p);
    return 0;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc "$work/app.c" -o "$work/app_pc" $(pkg-config --cflags --libs cr)
"$work/app_pc" | grep -q "^persistent checkpoint data is corrupt" \
  || { echo "FAIL: pkg-config build did not run"; exit 1; }

mkdir -p "$work/cm"
cat > "$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(user C)
find_package(crmpi REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE crmpi::cr)
CM
cmake -S "$work/cm" -B "$work/cm/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm/b" >/dev/null
"$work/cm/b/app" | grep -q "^persistent" || { echo "FAIL: find_package build did not run"; exit 1; }
# A checkpoint with the moved copy: its epoch files are laid out by the
# helper installed beside the library (found relative to it, not through a
# path baked in at build time).
cat > "$work/ckpt.c" <<'C'
#include <cr.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char *p = crmalloc(1 << 20);
    if (!p) return 1;
    memset(p, 7, 1 << 20);
    int rc = cr_checkpoint();
    if (rc != CR_CHECKPOINTED) { printf("checkpoint: %s\n", cr_strerror(rc)); return 1; }
    printf("checkpointed\n");
    return 0;
}
C
cc "$work/ckpt.c" -o "$work/ckpt" $(pkg-config --cflags --libs cr)
mkdir "$work/ckdir"
out=$(CRMPI_DIR="$work/ckdir" CRMPI_LOG=debug "$work/ckpt" 2>&1) \
  || { echo "FAIL: checkpoint with the installed copy: $out"; exit 1; }
echo "$out" | grep -q "layout helper $prefix/.*libexec/crmpi/crmpi-layout-helper started" \
  || { echo "FAIL: the installed layout helper was not used: $out"; exit 1; }
echo "PASS: installed copy works via pkg-config and find_package from a moved prefix"
