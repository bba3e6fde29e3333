#!/bin/sh
# crmpi-ckpt on a generated directory: list shows every epoch, verify
# passes (exit 0), fails by name after damage (exit 1) and names the epoch
# a restart would use, usage errors exit 2.
set -u
GEN=$1 TOOL=$2
D=$(mktemp -d /tmp/crtest-tool-XXXXXX)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$GEN" "$D" 5 || fail "generator"
out=$("$TOOL" list "$D") || fail "list exit $?"
echo "$out"
[ "$(echo "$out" | grep -c committed)" -eq 5 ] || fail "list shows 5 committed epochs"
echo "$out" | grep -q "incr(parent 2)" || fail "list shows epoch 3 as an increment of 2"
: > "$D/epoch-000000000009.h5"
"$TOOL" list "$D" | grep "^9 " | grep -q uncommitted || fail "uncommitted file listed"
"$TOOL" verify "$D"; [ $? -eq 0 ] || fail "verify of an intact directory"
"$TOOL" verify "$D" 2; [ $? -eq 0 ] || fail "verify of epoch 2"
"$TOOL" verify "$D" 77; [ $? -eq 1 ] || fail "verify of an epoch that is not committed"
"$TOOL" verify; [ $? -eq 2 ] || fail "usage error exits 2"
"$TOOL" verify "$D" x; [ $? -eq 2 ] || fail "bad epoch number exits 2"
"$TOOL" frobnicate; [ $? -eq 2 ] || fail "unknown command exits 2"
"$TOOL" env | grep -q CRMPI_KEEP || fail "env lists CRMPI_KEEP"
# flip one byte of epoch 5's page data: /pages starts at the offset stored
# at byte 88 of the epoch header (FORMAT.md)
f="$D/epoch-000000000005.h5"
pages=$(od -An -t u8 -j 88 -N 8 "$f" | tr -d ' ')
printf '\377' | dd of="$f" bs=1 seek=$((pages + 100)) conv=notrunc 2>/dev/null
out=$("$TOOL" verify "$D" 2>&1); rc=$?
echo "$out"
[ $rc -eq 1 ] || fail "verify of a damaged epoch exits 1 (got $rc)"
echo "$out" | grep -q "INVALID: epoch 5" || fail "verdict names epoch 5"
echo "$out" | grep -q "a restart would use epoch 4" || fail "names the fallback epoch"
rm -f "$D/epoch-000000000004.h5"
out=$("$TOOL" verify "$D" 4 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "file missing" || fail "missing file named ($rc)"
printf 'x' | dd of="$D/index" bs=1 seek=40 conv=notrunc 2>/dev/null
out=$("$TOOL" verify "$D" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "INVALID" || fail "damaged index refused ($rc)"
echo PASS
