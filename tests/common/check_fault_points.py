#!/usr/bin/env python3
"""check_fault_points.py - the table of fault points and the code agree.

Usage: check_fault_points.py TOP

Every point named by a cr_fault(), cr_fault_errno(), cr_store_fault() or
crmpi_fault() call in src/ and mpi-wrap/ must be a row of
src/common/fault_points.def, and every row must be reached by at least one
call; a name listed twice is an error too. The multi-rank kill test
(tests/mpi/fault_points.py) is driven by the same table and checks in turn
that it has a case for every row.
"""
import os
import re
import sys

CALL = re.compile(r'\b(?:cr_fault|cr_fault_errno|cr_store_fault|crmpi_fault)\s*\(\s*"([^"]*)"\s*\)')
ROW = re.compile(r'^\s*CR_FAULT_POINT\(\s*"([^"]+)"', re.M)


def table(top):
    with open(os.path.join(top, 'src/common/fault_points.def')) as f:
        return ROW.findall(f.read())


def calls(top):
    found = {}
    for sub in ('src', 'mpi-wrap'):
        for dirpath, _, files in os.walk(os.path.join(top, sub)):
            for name in files:
                if not name.endswith(('.c', '.h')):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, errors='replace') as f:
                    for m in CALL.finditer(f.read()):
                        found.setdefault(m.group(1), []).append(os.path.relpath(path, top))
    return found


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    top = argv[1]
    rows, used = table(top), calls(top)
    bad = 0
    for p in sorted({r for r in rows if rows.count(r) > 1}):
        print('check_fault_points: %s is listed twice in fault_points.def' % p)
        bad += 1
    for p in sorted(set(used) - set(rows)):
        print('check_fault_points: %s (%s) is not in fault_points.def' % (p, ', '.join(used[p])))
        bad += 1
    for p in sorted(set(rows) - set(used)):
        print('check_fault_points: %s is in fault_points.def but no code reaches it' % p)
        bad += 1
    if not rows or not used:
        print('check_fault_points: found no points (table %d, calls %d)' % (len(rows), len(used)))
        bad += 1
    if bad:
        print('check_fault_points: FAIL')
        return 1
    print('check_fault_points: PASS %d points, %d call sites' %
          (len(rows), sum(len(v) for v in used.values())))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
