/*
 * globals.c - the executable's global variables as part of the checkpoint.
 *
 * Which bytes: every allocated, writable, non-TLS section of the main
 * executable (.data, .bss, .tm_clone_table, a Fortran common block...) read
 * from the section headers of /proc/self/exe, minus
 *   - everything inside PT_GNU_RELRO and the GOTs (.got, .got.plt),
 *     .dynamic and the init/fini arrays: the dynamic linker's data, the same
 *     in every run of the same build, and partly read-only after start-up;
 *   - the objects of shared libraries placed in the executable by copy
 *     relocations (R_X86_64_COPY in .rela.dyn: stdout, environ, optarg, Open
 *     MPI's ompi_mpi_comm_world behind MPI_COMM_WORLD...). They belong to
 *     the library, which the new process initialised afresh; overwriting
 *     them with old bytes would corrupt it.
 *
 * How: a copy in the persistent heap, refreshed at every checkpoint before
 * the region is collected and copied back at restore before any persistent
 * thread resumes. Tracking the executable's pages directly would need the
 * tracker to register memory outside the region and the restore to write
 * outside it; the copy needs neither, and comparing each 4 KiB page before
 * copying it keeps unchanged globals out of incremental epochs (a memcmp of
 * the data segment costs about what the tracker's scan of it would).
 *
 * If the runtime itself is linked into the executable (static cr_internal,
 * unit tests), its own state is among these globals: they are left alone
 * then, with a notice.
 */
#include "interpose/interpose.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "cr.h"

#define CHUNK 4096

struct seg { uintptr_t addr; size_t len; size_t off; };

struct cr_globals {
    size_t nseg;
    size_t total;
    unsigned char *copy;        /* total bytes, persistent heap */
    struct seg seg[];
};

/* The pieces while the executable is scanned (glibc memory, temporary). */
struct pieces { struct cr_range *v; size_t n, cap; };

struct main_info { uintptr_t base; struct cr_range relro; int found; };

static int find_main(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct main_info *m = arg;
    m->base = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_GNU_RELRO) {
            m->relro.lo = m->base + ph->p_vaddr;
            m->relro.hi = m->relro.lo + ph->p_memsz;
        }
    }
    m->found = 1;
    return 1;      /* the first object is the executable */
}

static int read_at(int fd, void *buf, size_t len, off_t off)
{
    ssize_t r = pread(fd, buf, len, off);
    if (r != (ssize_t)len) {
        cr_perr("pread(/proc/self/exe, %zu bytes at %lld)", len, (long long)off);
        return -EIO;
    }
    return 0;
}

static void *read_section(int fd, const ElfW(Shdr) *sh)
{
    void *p = malloc(sh->sh_size ? sh->sh_size : 1);
    if (p && read_at(fd, p, sh->sh_size, (off_t)sh->sh_offset)) {
        free(p);
        p = NULL;
    }
    return p;
}

static int excluded_name(const char *n)
{
    static const char *const names[] = { ".got", ".got.plt", ".dynamic", ".init_array",
                                         ".fini_array", ".preinit_array", NULL };
    for (int i = 0; names[i]; i++)
        if (!strcmp(n, names[i]))
            return 1;
    return 0;
}

static int push(struct pieces *P, uintptr_t lo, uintptr_t hi)
{
    if (P->n == P->cap) {
        size_t cap = P->cap ? 2 * P->cap : 16;
        struct cr_range *v = realloc(P->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        P->v = v;
        P->cap = cap;
    }
    P->v[P->n++] = (struct cr_range){ lo, hi };
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct cr_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* The cuts come in relocation-table order, which is not address order, and
 * the linker packs the copied objects next to each other: walking them
 * sorted is what keeps a piece from ending before it starts. */
int cr_globals_subtract(uintptr_t lo, uintptr_t hi, struct cr_range *cut, size_t ncut,
                        struct cr_range **out, size_t *nout)
{
    struct pieces P = { *out, *nout, *nout };
    int rc = 0;
    if (ncut)                   /* qsort's base must not be NULL, even for 0 */
        qsort(cut, ncut, sizeof *cut, range_cmp);
    for (size_t i = 0; i < ncut && lo < hi && rc == 0; i++) {
        if (cut[i].hi <= lo)
            continue;
        if (cut[i].lo >= hi)
            break;
        if (cut[i].lo > lo)
            rc = push(&P, lo, cut[i].lo);
        lo = cut[i].hi;          /* > lo: skip the library's object */
    }
    if (rc == 0 && lo < hi)
        rc = push(&P, lo, hi);
    *out = P.v;
    *nout = P.n;
    return rc;
}

/* The copy relocations of the executable, as address ranges. */
static size_t copy_relocs(int fd, const ElfW(Shdr) *sh, size_t nsh, uintptr_t base,
                          struct cr_range **out)
{
    size_t n = 0, cap = 0;
    *out = NULL;
    for (size_t i = 0; i < nsh; i++) {
        if (sh[i].sh_type != SHT_RELA || sh[i].sh_link >= nsh)
            continue;
        const ElfW(Shdr) *symh = &sh[sh[i].sh_link];
        ElfW(Rela) *rel = read_section(fd, &sh[i]);
        ElfW(Sym) *sym = read_section(fd, symh);
        size_t nrel = sh[i].sh_size / sizeof *rel, nsym = symh->sh_size / sizeof *sym;
        for (size_t k = 0; rel && sym && k < nrel; k++) {
            if (ELF64_R_TYPE(rel[k].r_info) != R_X86_64_COPY)
                continue;
            size_t s = ELF64_R_SYM(rel[k].r_info);
            size_t len = s < nsym ? sym[s].st_size : 0;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                struct cr_range *r = realloc(*out, cap * sizeof *r);
                if (!r)
                    break;
                *out = r;
            }
            (*out)[n].lo = base + rel[k].r_offset;
            (*out)[n].hi = (*out)[n].lo + (len ? len : 1);
            cr_dbg("globals: copy relocation at %#lx, %zu bytes (not restored)",
                   (unsigned long)(*out)[n].lo, len);
            n++;
        }
        free(rel);
        free(sym);
    }
    return n;
}

static int scan_exe(struct pieces *P)
{
    struct main_info m = { 0 };
    dl_iterate_phdr(find_main, &m);
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cr_perr("transparent mode: open(/proc/self/exe)");
        return -errno;
    }
    int rc = -EIO;
    ElfW(Ehdr) eh;
    ElfW(Shdr) *sh = NULL;
    char *names = NULL;
    struct cr_range *cut = NULL;
    if (read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_shentsize != sizeof *sh || eh.e_shstrndx >= eh.e_shnum) {
        cr_err("transparent mode: /proc/self/exe has no usable section headers");
        goto close_fd;
    }
    sh = malloc(eh.e_shnum * sizeof *sh);
    if (!sh || read_at(fd, sh, eh.e_shnum * sizeof *sh, (off_t)eh.e_shoff))
        goto close_fd;
    names = read_section(fd, &sh[eh.e_shstrndx]);
    if (!names)
        goto close_fd;
    size_t ncut = copy_relocs(fd, sh, eh.e_shnum, m.base, &cut);
    rc = 0;
    for (size_t i = 0; i < eh.e_shnum && rc == 0; i++) {
        const ElfW(Shdr) *s = &sh[i];
        if ((s->sh_flags & (SHF_ALLOC | SHF_WRITE)) != (SHF_ALLOC | SHF_WRITE) ||
            (s->sh_flags & SHF_TLS) || s->sh_size == 0 ||
            s->sh_name >= sh[eh.e_shstrndx].sh_size || excluded_name(names + s->sh_name))
            continue;
        uintptr_t lo = m.base + s->sh_addr, hi = lo + s->sh_size;
        if (lo < m.relro.hi && hi > m.relro.lo)
            continue;
        rc = cr_globals_subtract(lo, hi, cut, ncut, &P->v, &P->n);
    }
    free(cut);
    free(names);
close_fd:
    free(sh);
    close(fd);
    return rc;
}

int cr_globals_create(struct cr_globals **out)
{
    *out = NULL;
    Dl_info self;
    struct main_info m = { 0 };
    dl_iterate_phdr(find_main, &m);
    if (dladdr((void *)&cr_interpose_active_, &self) && self.dli_fbase &&
        (uintptr_t)self.dli_fbase == m.base) {
        cr_info("transparent mode: the runtime is linked into the executable; its globals "
                "are not checkpointed");
        *out = crcalloc(1, sizeof **out);
        return *out ? 0 : -ENOMEM;
    }
    struct pieces P = { 0 };
    int rc = scan_exe(&P);
    if (rc)
        goto free_pieces;
    rc = -ENOMEM;
    struct cr_globals *g = crcalloc(1, sizeof *g + P.n * sizeof *g->seg);
    if (!g)
        goto free_pieces;
    for (size_t i = 0; i < P.n; i++) {
        g->seg[i] = (struct seg){ P.v[i].lo, P.v[i].hi - P.v[i].lo, g->total };
        g->total += g->seg[i].len;
    }
    g->nseg = P.n;
    if (g->total && !(g->copy = crmalloc(g->total))) {
        cr_err("transparent mode: no room in the persistent heap for a copy of the "
               "executable's globals (%zu bytes)", g->total);
        crfree(g);
        goto free_pieces;
    }
    cr_dbg("globals: %zu ranges, %zu bytes", g->nseg, g->total);
    *out = g;
    rc = 0;
free_pieces:
    free(P.v);
    return rc;
}

int cr_globals_contains(const struct cr_globals *g, uintptr_t lo, uintptr_t hi)
{
    /* Segments come in address order; adjacent ones may continue a range. */
    for (size_t i = 0; i < g->nseg && lo < hi; i++) {
        uintptr_t a = g->seg[i].addr, b = a + g->seg[i].len;
        if (lo >= a && lo < b)
            lo = b;
    }
    return lo >= hi;
}

/* The executable's data and bss hold AddressSanitizer redzones between
 * globals in an ASan build: its memcmp/memcpy interceptors report the copy
 * of a whole segment as a global-buffer-overflow. There the copies go
 * through uninstrumented volatile loops (volatile, so the compiler does not
 * turn them back into intercepted calls); other builds use libc. */
#ifdef __SANITIZE_ADDRESS__
__attribute__((no_sanitize_address)) static int seg_differs(const unsigned char *a,
                                                           const unsigned char *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return 1;
    return 0;
}

__attribute__((no_sanitize_address)) static void seg_copy(void *dst, const void *src, size_t n)
{
    volatile unsigned char *d = dst;
    const volatile unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}
#else
static int seg_differs(const unsigned char *a, const unsigned char *b, size_t n)
{
    return memcmp(a, b, n) != 0;
}

static void seg_copy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
#endif

void cr_globals_save(struct cr_globals *g)
{
    for (size_t i = 0; g->copy && i < g->nseg; i++) {
        const unsigned char *src = (const unsigned char *)g->seg[i].addr;
        unsigned char *dst = g->copy + g->seg[i].off;
        for (size_t o = 0; o < g->seg[i].len; o += CHUNK) {
            size_t n = g->seg[i].len - o < CHUNK ? g->seg[i].len - o : CHUNK;
            /* Only changed chunks are written: unchanged pages stay clean. */
            if (seg_differs(dst + o, src + o, n))
                seg_copy(dst + o, src + o, n);
        }
    }
}

int cr_globals_restore(const struct cr_globals *g)
{
    if (!g)
        return CR_ECORRUPT;
    for (size_t i = 0; g->copy && i < g->nseg; i++)
        seg_copy((void *)g->seg[i].addr, g->copy + g->seg[i].off, g->seg[i].len);
    return 0;
}
