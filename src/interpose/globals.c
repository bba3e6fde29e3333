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

#define MAX_SEGS 64
#define CHUNK 4096

struct seg { uintptr_t addr; size_t len; size_t off; };

struct cr_globals {
    uint32_t nseg;
    size_t total;
    struct seg seg[MAX_SEGS];
    unsigned char *copy;        /* total bytes, persistent heap */
};

struct range { uintptr_t lo, hi; };

struct main_info { uintptr_t base; struct range relro; int found; };

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

/* Add [lo, hi) to g minus the copy-relocated ranges cut[0..ncut). */
static int add_range(struct cr_globals *g, uintptr_t lo, uintptr_t hi,
                     const struct range *cut, size_t ncut)
{
    while (lo < hi) {
        uintptr_t end = hi;
        for (size_t i = 0; i < ncut; i++) {
            if (cut[i].lo <= lo && lo < cut[i].hi) {
                lo = cut[i].hi;        /* inside an excluded object: skip it */
                i = (size_t)-1;
                continue;
            }
            if (cut[i].lo > lo && cut[i].lo < end)
                end = cut[i].lo;
        }
        if (lo >= hi)
            break;
        if (end > hi)
            end = hi;
        if (g->nseg == MAX_SEGS) {
            cr_err("transparent mode: more than %d global ranges in the executable", MAX_SEGS);
            return CR_EUNSUPPORTED;
        }
        g->seg[g->nseg++] = (struct seg){ lo, end - lo, g->total };
        g->total += end - lo;
        lo = end;
    }
    return 0;
}

/* The copy relocations of the executable, as address ranges. */
static size_t copy_relocs(int fd, const ElfW(Shdr) *sh, size_t nsh, uintptr_t base,
                          struct range **out)
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
                struct range *r = realloc(*out, cap * sizeof *r);
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

static int scan_exe(struct cr_globals *g)
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
    struct range *cut = NULL;
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
        rc = add_range(g, lo, hi, cut, ncut);
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
    struct cr_globals *g = crcalloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    Dl_info self;
    struct main_info m = { 0 };
    dl_iterate_phdr(find_main, &m);
    if (dladdr((void *)&cr_interpose_active_, &self) && self.dli_fbase &&
        (uintptr_t)self.dli_fbase == m.base) {
        cr_info("transparent mode: the runtime is linked into the executable; its globals "
                "are not checkpointed");
        *out = g;
        return 0;
    }
    int rc = scan_exe(g);
    if (rc == 0 && g->total) {
        g->copy = crmalloc(g->total);
        if (!g->copy)
            rc = -ENOMEM;
    }
    if (rc) {
        crfree(g);
        return rc;
    }
    cr_dbg("globals: %u ranges, %zu bytes", g->nseg, g->total);
    *out = g;
    return 0;
}

void cr_globals_save(struct cr_globals *g)
{
    for (uint32_t i = 0; g->copy && i < g->nseg; i++) {
        const unsigned char *src = (const unsigned char *)g->seg[i].addr;
        unsigned char *dst = g->copy + g->seg[i].off;
        for (size_t o = 0; o < g->seg[i].len; o += CHUNK) {
            size_t n = g->seg[i].len - o < CHUNK ? g->seg[i].len - o : CHUNK;
            /* Only changed chunks are written: unchanged pages stay clean. */
            if (memcmp(dst + o, src + o, n))
                memcpy(dst + o, src + o, n);
        }
    }
}

int cr_globals_restore(const struct cr_globals *g)
{
    if (!g)
        return CR_ECORRUPT;
    for (uint32_t i = 0; g->copy && i < g->nseg; i++)
        memcpy((void *)g->seg[i].addr, g->copy + g->seg[i].off, g->seg[i].len);
    return 0;
}
