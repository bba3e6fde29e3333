#!/usr/bin/env python3
"""check_coverage.py - every MPI function of mpi.h that takes or returns a
handle is described in mpi_functions.def, and libcrmpi defines a wrapper for
every described function that is not `pass` or `removed`.

Usage: check_coverage.py MPI_H WRAPPED_LIST LIBCRMPI_SO
Exit status 0 when complete; otherwise prints what is missing.
"""
import re
import subprocess
import sys

HANDLES = ('MPI_Comm', 'MPI_Group', 'MPI_Datatype', 'MPI_Op', 'MPI_Request', 'MPI_Info',
           'MPI_Errhandler', 'MPI_Win', 'MPI_File', 'MPI_Message')


def handle_functions(mpi_h):
    src = re.sub(r'/\*.*?\*/', '', open(mpi_h).read(), flags=re.S)
    names = set()
    for ret, name, args in re.findall(
            r'OMPI_DECLSPEC\s+([A-Za-z_][\w \*]*?)\s*\b(MPI_\w+)\s*\(([^;]*?)\)', src, flags=re.S):
        text = ret + ' ' + args
        if any(re.search(r'\b%s\b' % h, text) for h in HANDLES):
            names.add(name)
    return names


def main(argv):
    mpi_h, listing, lib = argv[1:4]
    described = {}
    for line in open(listing):
        kind, name = line.split()
        described[name] = kind
    needed = handle_functions(mpi_h)
    missing = sorted(needed - set(described))
    out = subprocess.run(['nm', '-D', '--defined-only', lib], capture_output=True, text=True,
                         check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if ' T ' in l}
    unwrapped = sorted(n for n, k in described.items()
                       if k not in ('pass', 'removed') and n not in defined)
    for n in missing:
        print('not described in mpi_functions.def: %s' % n)
    for n in unwrapped:
        print('described as %s but libcrmpi defines no %s' % (described[n], n))
    kinds = {}
    for k in described.values():
        kinds[k] = kinds.get(k, 0) + 1
    print('%d handle-taking functions in mpi.h; described: %s' %
          (len(needed), ', '.join('%s %d' % kv for kv in sorted(kinds.items()))))
    return 1 if missing or unwrapped else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
