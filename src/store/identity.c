/*
 * identity.c - what a checkpoint must be restored into: the build-ids and
 * load addresses of the executable and its shared libraries, and the node
 * topology.
 *
 * Persistent stacks hold return addresses into code, so a restore is only
 * sound in a process that maps the same builds at the same addresses
 * (DESIGN.md decision 2). dl_iterate_phdr lists the loaded objects; the
 * build-id is the NT_GNU_BUILD_ID note of each. The vdso is left out: its
 * build-id changes with the kernel and no persistent frame returns into it.
 * The identity is a text, one object per line, so h5dump and crmpi-ckpt
 * show it as it is. Libraries loaded later with dlopen (Open MPI plugins)
 * may be absent at restore time: only objects present in both processes
 * are compared, plus the executable, which must always match.
 *
 * Addresses are compared strictly only for the objects loaded at program
 * start (the executable and its DT_NEEDED closure, snapshotted by a
 * constructor): those are where persistent stacks can return into, and with
 * ASLR off the kernel places them identically. Objects dlopen'ed later
 * (Open MPI loads libpmix and its components inside MPI_Init) land wherever
 * the mmap history of that moment puts them, which differs between runs when
 * MPI's own threads allocate concurrently; no persistent frame or pointer
 * refers to them (MPI handles are virtualised and rebuilt), so for them only
 * the build-id must match.
 */
#include "store/internal.h"
#include "common/errors.h"
#include "common/log.h"

#include <elf.h>
#include <hwloc.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct idbuf {
    char *text;
    size_t len, cap;
    int err;
};

static void id_append(struct idbuf *b, const char *line)
{
    size_t n = strlen(line);
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + n;
        char *t = realloc(b->text, cap);
        if (!t) {
            b->err = -ENOMEM;
            return;
        }
        b->text = t;
        b->cap = cap;
    }
    memcpy(b->text + b->len, line, n + 1);
    b->len += n;
}

/* Hex of the NT_GNU_BUILD_ID note in one PT_NOTE segment, or "" */
static void note_build_id(const struct dl_phdr_info *info, const ElfW(Phdr) *ph,
                          char *hex, size_t hexlen)
{
    const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
    const char *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
        const char *name = p + sizeof *n;
        const unsigned char *desc = (const unsigned char *)name + ((n->n_namesz + 3) & ~3u);
        const char *next = (const char *)desc + ((n->n_descsz + 3) & ~3u);
        if (next > end)
            return;
        if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
            size_t k = 0;
            for (size_t i = 0; i < n->n_descsz && k + 3 <= hexlen; i++)
                k += (size_t)snprintf(hex + k, hexlen - k, "%02x", desc[i]);
            return;
        }
        p = next;
    }
}

static int object_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct idbuf *b = arg;
    char hex[129] = "";
    char line[PATH_MAX + 200];
    const char *name = info->dlpi_name;

    if (name && strstr(name, "linux-vdso"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_NOTE && !hex[0])
            note_build_id(info, &info->dlpi_phdr[i], hex, sizeof hex);
    if (!name || !*name) {
        /* The executable comes first with an empty name; the vdso also has
         * an empty name on some systems but no PT_LOAD at offset 0 file. */
        if (b->len)
            return 0;
        static char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        name = n > 0 ? exe : "(executable)";
    }
    snprintf(line, sizeof line, "%s 0x%llx %s\n", hex[0] ? hex : "-",
             (unsigned long long)info->dlpi_addr, name);
    id_append(b, line);
    return 0;
}

/* Paths of the objects loaded at program start ("" for the executable). */
static char **startup_objs;
static size_t nstartup;

static int startup_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    char **grown = realloc(startup_objs, (nstartup + 1) * sizeof *grown);
    if (!grown)
        return 1;
    startup_objs = grown;
    if (!(startup_objs[nstartup] = strdup(name)))
        return 1;
    nstartup++;
    return 0;
}

__attribute__((constructor)) static void snapshot_startup_objects(void)
{
    dl_iterate_phdr(startup_cb, NULL);
}

static int loaded_at_startup(const char *path)
{
    for (size_t i = 0; i < nstartup; i++)
        if (!strcmp(startup_objs[i], path))
            return 1;
    return 0;
}

int cr_identity_text(char **text, size_t *len)
{
    struct idbuf b = { 0 };
    dl_iterate_phdr(object_cb, &b);
    if (b.err || !b.text) {
        free(b.text);
        cr_err("collecting the build-ids of loaded objects failed: out of memory");
        return -ENOMEM;
    }
    *text = b.text;
    *len = b.len;
    return 0;
}

struct id_line {
    char build[129];
    unsigned long long addr;
    char path[PATH_MAX];
};

/* Parse line k of text (hostile input: bounded). Returns 1 if parsed. */
static int id_parse_line(const char **cur, const char *end, struct id_line *l)
{
    const char *p = *cur;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (p >= end || !nl)
        return 0;
    char line[PATH_MAX + 200];
    size_t n = (size_t)(nl - p);
    if (n >= sizeof line)
        return 0;
    memcpy(line, p, n);
    line[n] = 0;
    *cur = nl + 1;
    int pos = 0;
    if (sscanf(line, "%128s %llx %n", l->build, &l->addr, &pos) < 2 || !pos)
        return 0;
    snprintf(l->path, sizeof l->path, "%s", line + pos);
    return 1;
}

/* This process's objects, parsed once (up to the first line that does not
 * parse, as before): each recorded object is then looked up among them, not
 * re-parsed from the text (that made the check 0.7 ms per link here). */
static int parse_mine(const char *mine, size_t mylen, struct id_line **out, size_t *n)
{
    size_t cap = 1;
    for (size_t i = 0; i < mylen; i++)
        cap += mine[i] == '\n';
    struct id_line *v = malloc(cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    const char *mp = mine, *mend = mine + mylen;
    size_t k = 0;
    while (k < cap && id_parse_line(&mp, mend, &v[k]))
        k++;
    *out = v;
    *n = k;
    return 0;
}

int cr_identity_check(const char *recorded, size_t len, const char *file)
{
    char *mine;
    size_t mylen, nm;
    struct id_line *ml;
    int rc = cr_identity_text(&mine, &mylen);
    if (rc < 0)
        return rc;
    rc = parse_mine(mine, mylen, &ml, &nm);
    free(mine);
    if (rc < 0)
        return rc;
    const char *rp = recorded, *rend = recorded + len;
    struct id_line r;
    int first = 1;
    while (rc == 0 && id_parse_line(&rp, rend, &r)) {
        int found = 0;
        for (size_t k = 0; k < nm; k++) {
            const struct id_line *m = &ml[k];
            int same_obj = first ? 1 : !strcmp(m->path, r.path);
            if (!same_obj)
                continue;
            found = 1;
            if (!strcmp(m->build, r.build) && m->addr != r.addr && !first &&
                !loaded_at_startup(m->path)) {
                cr_info("%s: %s (loaded after start) is at 0x%llx here, 0x%llx in the "
                        "checkpoint; same build, no persistent state refers to it",
                        file, r.path, m->addr, r.addr);
            } else if (strcmp(m->build, r.build) || m->addr != r.addr) {
                cr_err("%s: written by another build: %s has build-id %s at 0x%llx in the "
                       "checkpoint but %s at 0x%llx here", file, r.path, r.build, r.addr,
                       m->build, m->addr);
                rc = CR_EMISMATCH;
            }
            break;
        }
        if (!found)
            cr_warn("%s: %s (build-id %s) is not loaded in this process; not compared",
                    file, r.path, r.build);
        first = 0;
    }
    if (first && rc == 0) {
        cr_err("%s: the identity record lists no objects", file);
        rc = CR_ECORRUPT;
    }
    free(ml);
    return rc;
}

int cr_topology_xml(char **xml, size_t *len)
{
    hwloc_topology_t topo;
    char *buf = NULL;
    int n = 0;
    if (hwloc_topology_init(&topo) < 0) {
        cr_perr("hwloc_topology_init");
        return -ENOMEM;
    }
    if (hwloc_topology_load(topo) < 0) {
        cr_perr("hwloc_topology_load");
        hwloc_topology_destroy(topo);
        return -EIO;
    }
    if (hwloc_topology_export_xmlbuffer(topo, &buf, &n, 0) < 0 || n <= 0) {
        cr_perr("hwloc_topology_export_xmlbuffer");
        hwloc_topology_destroy(topo);
        return -EIO;
    }
    *xml = malloc((size_t)n);
    if (*xml)
        memcpy(*xml, buf, (size_t)n);
    hwloc_free_xmlbuffer(topo, buf);
    hwloc_topology_destroy(topo);
    if (!*xml)
        return -ENOMEM;
    *len = (size_t)n;
    return 0;
}
