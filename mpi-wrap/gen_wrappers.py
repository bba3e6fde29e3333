#!/usr/bin/env python3
"""gen_wrappers.py - emit the MPI_* wrappers of libcrmpi from mpi_functions.def.

Usage: gen_wrappers.py DEF OUT.c [--list OUT.txt]

Every `wrap` line becomes a function that, unless crmpi is in pass-through
mode (CRMPI_DISABLE=1, before MPI_Init, or inside the runtime), translates
virtual handles to real ones, calls PMPI_<name>, and wraps the handles the call
creates. Every `refuse` line becomes a function that refuses the call by name
when checkpointing is enabled. `special` and `pass` lines emit nothing (the
former are written by hand in mpi-wrap/*.c). --list writes the names of all
described functions with their kind (used by the coverage test).

Only the Python standard library is used: the build needs cmake + python3.
"""
import re
import sys

HANDLES = {
    'MPI_Comm': 'comm', 'MPI_Group': 'group', 'MPI_Datatype': 'type',
    'MPI_Op': 'op', 'MPI_Request': 'req', 'MPI_Info': 'info',
    'MPI_Errhandler': 'errh', 'MPI_Message': 'msg',
    'MPI_Win': 'win', 'MPI_File': 'file',
}
KINDS = ('wrap', 'special', 'refuse', 'pass', 'removed')


class Param:
    def __init__(self, text):
        self.text = text.strip()
        m = re.match(r'^(.*?)(\w+)\s*((?:\[[^\]]*\])*)$', self.text)
        if not m:
            raise ValueError('cannot parse parameter %r' % text)
        self.type = m.group(1).strip()
        self.name = m.group(2)
        self.array = m.group(3)
        base = self.type.replace('const', '').replace('*', '').strip()
        self.base = base
        self.pointer = '*' in self.type
        self.handle = base in HANDLES and HANDLES[base] is not None


class Func:
    def __init__(self, kind, proto, ann, lineno):
        m = re.match(r'^(.*?)\b(MPI_\w+)\s*\((.*)\)\s*$', proto)
        if not m:
            raise ValueError('line %d: cannot parse prototype %r' % (lineno, proto))
        self.kind, self.ret, self.name = kind, m.group(1).strip(), m.group(2)
        args = m.group(3).strip()
        self.params = [] if args in ('', 'void') else [Param(p) for p in split_args(args)]
        self.out, self.arr, self.outarr = set(), {}, {}
        for a in ann.split():
            key, _, val = a.partition('=')
            if key == 'out':
                self.out.add(val)
            elif key in ('arr', 'outarr'):
                name, _, expr = val.partition(':')
                if not expr or expr == '?':
                    raise ValueError('line %d: %s needs a count expression' % (lineno, a))
                getattr(self, key)[name] = expr
            else:
                raise ValueError('line %d: unknown annotation %r' % (lineno, a))
        names = {p.name for p in self.params}
        for n in list(self.out) + list(self.arr) + list(self.outarr):
            if n not in names:
                raise ValueError('line %d: %s has no parameter %s' % (lineno, self.name, n))
        if kind == 'wrap':
            for p in self.params:
                if p.handle and (p.pointer or p.array) and p.name not in self.out \
                        and p.name not in self.arr and p.name not in self.outarr:
                    raise ValueError('line %d: %s: handle parameter %s needs an annotation'
                                     % (lineno, self.name, p.name))

    def proto(self):
        return '%s %s(%s)' % (self.ret, self.name,
                              ', '.join(p.text for p in self.params) or 'void')

    def pmpi_call(self, args):
        return 'P%s(%s)' % (self.name, ', '.join(args))


def split_args(s):
    out, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([':
            depth += 1
        elif ch in ')]':
            depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur)
            cur = ''
        else:
            cur += ch
    out.append(cur)
    return out


def parse(path):
    funcs = []
    for lineno, line in enumerate(open(path), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        kind, _, rest = line.partition(' ')
        if kind not in KINDS:
            raise ValueError('line %d: unknown kind %r' % (lineno, kind))
        proto, _, ann = rest.partition(';')
        funcs.append(Func(kind, proto.strip(), ann.strip(), lineno))
    seen = set()
    for f in funcs:
        if f.name in seen:
            raise ValueError('%s described twice' % f.name)
        seen.add(f.name)
    return funcs


def emit_wrap(f, w):
    plain = [p.name for p in f.params]
    w('%s\n{\n    CRMPI_LIB_SCOPE;\n' % f.proto())
    ret_handle = f.ret in HANDLES
    if ret_handle:
        w('    %s r_ = %s;\n' % (f.ret, f.pmpi_call(
            ['vh_in_%s(%s)' % (HANDLES[p.base], p.name) if p.handle else p.name
             for p in f.params])))
        w('    return crmpi_passthrough() ? r_ : vh_back_%s(r_);\n}\n\n' % HANDLES[f.ret])
        return
    w('    if (crmpi_passthrough())\n        return %s;\n' % f.pmpi_call(plain))
    args, pre, post, after = [], [], [], []
    for p in f.params:
        k = HANDLES.get(p.base)
        if not p.handle:
            args.append(p.name)
        elif p.name in f.out:
            pre.append('    %s r_%s = %s;\n' % (p.base, p.name, 'MPI_%s_NULL' % NULLS[k]))
            args.append('&r_%s' % p.name)
            extra = ''
            if k == 'type':
                extra = ', ' + type_children(f)
            post.append('    if (rc == MPI_SUCCESS)\n        rc = vh_out_%s(%s, r_%s%s);\n'
                        % (k, p.name, p.name, extra))
        elif p.name in f.arr:
            pre.append('    %s s_%s[CRMPI_ARR_STACK];\n' % (p.base, p.name))
            pre.append('    %s *x_%s = vh_in_%s_arr(%s, %s, s_%s);\n'
                       % (p.base, p.name, k, p.name, f.arr[p.name], p.name))
            pre.append('    if (!x_%s)\n        return MPI_ERR_NO_MEM;\n' % p.name)
            args.append('x_%s' % p.name)
            after.append('    vh_arr_release(x_%s, %s, s_%s);\n' % (p.name, p.name, p.name))
        elif p.name in f.outarr:
            args.append(p.name)
            pre.append('    int n_%s = %s;\n' % (p.name, f.outarr[p.name]))
            post.append('    if (rc == MPI_SUCCESS)\n        vh_back_%s_arr(%s, n_%s);\n'
                        % (k, p.name, p.name))
        else:
            args.append('vh_in_%s(%s)' % (k, p.name))
    w(''.join(pre))
    w('    int rc = %s;\n' % f.pmpi_call(args))
    w(''.join(after))
    w(''.join(post))
    w('    return rc;\n}\n\n')


def type_children(f):
    """The datatype arguments a type constructor was given, in the order
    MPI_Type_get_contents reports its children: `array, count` or a compound
    literal of the by-value ones."""
    for p in f.params:
        if p.base == 'MPI_Datatype' and p.name in f.arr:
            return '%s, %s' % (p.name, f.arr[p.name])
    vals = [p.name for p in f.params
            if p.base == 'MPI_Datatype' and not p.pointer and not p.array]
    if not vals:
        return 'NULL, 0'
    return '(const MPI_Datatype[]){ %s }, %d' % (', '.join(vals), len(vals))


NULLS = {'comm': 'COMM', 'group': 'GROUP', 'type': 'DATATYPE', 'op': 'OP',
         'req': 'REQUEST', 'info': 'INFO', 'errh': 'ERRHANDLER', 'msg': 'MESSAGE',
         'file': 'FILE', 'win': 'WIN'}


def emit_refuse(f, w):
    plain = [p.name for p in f.params]
    w('%s\n{\n    CRMPI_LIB_SCOPE;\n' % f.proto())
    w('    if (crmpi_passthrough())\n        return %s;\n' % f.pmpi_call(plain))
    if f.ret == 'int':
        w('    return crmpi_refuse("%s");\n}\n\n' % f.name)
    else:
        w('    (void)crmpi_refuse("%s");\n    return %s;\n}\n\n'
          % (f.name, f.pmpi_call(plain)))


def main(argv):
    if len(argv) < 3:
        sys.exit('usage: gen_wrappers.py DEF OUT.c [--list OUT.txt]')
    funcs = parse(argv[1])
    chunks = []
    w = chunks.append
    w('/* Generated by mpi-wrap/gen_wrappers.py from mpi_functions.def: do not edit. */\n')
    w('#include "wrap_support.h"\n\n')
    w('/* Deprecated MPI functions are wrapped like the others. */\n')
    w('#pragma GCC diagnostic ignored "-Wdeprecated-declarations"\n\n')
    for f in funcs:
        if f.kind == 'wrap':
            emit_wrap(f, w)
        elif f.kind == 'refuse':
            emit_refuse(f, w)
    with open(argv[2], 'w') as out:
        out.write(''.join(chunks))
    if len(argv) >= 5 and argv[3] == '--list':
        with open(argv[4], 'w') as out:
            for f in funcs:
                out.write('%s %s\n' % (f.kind, f.name))


if __name__ == '__main__':
    main(sys.argv)
