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
echo "PASS: installed copy works via pkg-config and find_package from a moved prefix"
