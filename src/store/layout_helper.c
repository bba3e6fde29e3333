/*
 * layout_helper.c - creating the epoch files in a helper process of rank 0
 * (or of a single process), so that HDF5 runs outside the application's
 * blocking phase.
 *
 * Laying out an epoch file (h5layout.c) is CPU time inside HDF5: measured
 * 0.9-1.9 ms of a 1 GiB, 1%-written checkpoint's 3.5-6 ms blocking phase
 * here, and it cannot move to the background writer thread: the Debian
 * HDF5 is not thread-safe, and the application may be calling HDF5 itself
 * while the writer runs. A separate process has an HDF5 of its own. So
 * rank 0 (or a single process) keeps one helper process, started with the
 * first epoch: begin plans the layout (sizes, header, identity, every
 * node's topology - all ranks know them from begin's allgather) and
 * returns; whoever first needs the file on rank 0 - its writer, first
 * thing, or a put or finish - hands the plan to the helper on a socket and
 * reads the answer (the offsets HDF5 chose), which epoch.c then publishes
 * to the other ranks (its layout record). The helper uses HDF5's POSIX
 * driver for every file: the same datasets and attributes the ranks would have
 * made together through MPI-IO in begin, which is what happens when
 * rank 0 has no helper (the choice is rank 0's, sent in the allgather).
 *
 * The helper is the program crmpi-layout-helper (installed in
 * libexec/crmpi; CRMPI_LAYOUT_HELPER names another, or "off" for none). It serves one
 * request at a time, in order, on its standard input, and exits when the
 * socket closes - when this process dies too, however it dies. When it
 * cannot be started, or a request fails to reach it, the layout is made
 * here, as without it. When it dies with a request outstanding, a new one
 * is asked once; when that one dies on the request too (a helper that
 * dies on every request: a broken installation), the epoch fails like any
 * failed write (the next one is full), and this process lays out every
 * later epoch in the call (epoch.c: helper_off), so it loses one epoch,
 * not all of them. A helper killed between epochs is simply replaced.
 *
 * Wire format (one build talks to itself; the version check refuses a
 * helper of another build): request = struct req + path + epoch header +
 * identity + ntopo host names + ntopo lengths; reply = struct rep + ntopo
 * topology offsets.
 */
#include "store/internal.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define REQ_MAGIC 0x4c43524dU    /* "MRCL" */

struct req {
    uint32_t magic, version, hdr_size, path_len;
    uint64_t id_len, ntopo, align;
};

struct rep {
    int32_t  rc;
    uint32_t ntopo;
    uint64_t ds_off[CR_DS_COUNT];
};

struct cr_layout_helper {
    pid_t pid;          /* the helper                                  */
    pid_t owner;        /* the process that started it (fork children
                           must not share its socket)                  */
    int fd;
    int dead;           /* a send or receive failed: start another     */
};

/* ---- both sides ------------------------------------------------------------ */

static int io_full(int fd, void *buf, size_t n, int writing)
{
    char *p = buf;
    while (n) {
        ssize_t k = writing ? send(fd, p, n, MSG_NOSIGNAL) : read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? cr_neg_errno() : -EPIPE;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- the helper's side ------------------------------------------------------ */

static int serve_one(int fd, hid_t *fapl)
{
    struct req q;
    int rc = io_full(fd, &q, sizeof q, 0);
    if (rc)
        return rc;              /* EOF: the owner is gone */
    struct rep r = { .rc = -EPROTO };
    if (q.magic != REQ_MAGIC || q.version != CR_FMT_VERSION ||
        q.hdr_size != sizeof(struct cr_epoch_header) || q.path_len >= PATH_MAX ||
        q.ntopo > (1u << 20) || q.id_len > (1u << 30)) {
        cr_err("layout helper: a request of another build or a damaged one");
        (void)io_full(fd, &r, sizeof r, 1);
        return -EPROTO;
    }
    char path[PATH_MAX] = { 0 };
    struct cr_epoch_header hdr;
    char *id = malloc(q.id_len + 1);
    char (*hosts)[CR_HOST_MAX] = calloc(q.ntopo ? q.ntopo : 1, CR_HOST_MAX);
    uint64_t *lens = calloc(q.ntopo ? q.ntopo : 1, 2 * sizeof *lens);
    if (!id || !hosts || !lens)
        rc = -ENOMEM;
    if (!rc)
        rc = io_full(fd, path, q.path_len, 0);
    if (!rc)
        rc = io_full(fd, &hdr, sizeof hdr, 0);
    if (!rc)
        rc = io_full(fd, id, q.id_len, 0);
    if (!rc && q.ntopo)
        rc = io_full(fd, hosts, q.ntopo * CR_HOST_MAX, 0);
    if (!rc && q.ntopo)
        rc = io_full(fd, lens, q.ntopo * sizeof *lens, 0);
    /* An owner that died after asking has closed its end: nobody will use
     * the file, and its restarted successor may be creating the same
     * epoch's file by now, which creating it here would truncate. */
    char b;
    if (rc == 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
        rc = -EPIPE;
    if (rc == 0) {
        struct cr_layout_in in = { .path = path, .coll = cr_coll_self(), .fapl = fapl,
            .hdr = &hdr, .identity = id, .ntopo = q.ntopo,
            .topo_host = (const char (*)[CR_HOST_MAX])hosts, .topo_len = lens,
            .align = q.align };
        r.rc = cr_layout_create(&in, &hdr, lens + q.ntopo);
        r.ntopo = (uint32_t)q.ntopo;
        for (int i = 0; i < CR_DS_COUNT; i++)
            r.ds_off[i] = hdr.ds[i].offset;
        rc = io_full(fd, &r, sizeof r, 1);
        if (!rc && r.rc == 0 && q.ntopo)
            rc = io_full(fd, lens + q.ntopo, q.ntopo * sizeof *lens, 1);
    }
    free(id);
    free(hosts);
    free(lens);
    return rc;
}

int cr_layout_helper_serve(int fd)
{
    hid_t fapl = H5I_INVALID_HID;
    int rc;
    while ((rc = serve_one(fd, &fapl)) == 0)
        ;
    if (fapl >= 0)
        H5Pclose(fapl);
    return rc == -EPIPE ? 0 : rc;
}

/* ---- the store's side ------------------------------------------------------- */

/* CRMPI_LAYOUT_HELPER, else the helper installed beside the library that
 * holds this code (libexec, found relative to the library, so a moved
 * prefix still works), else - only for a program of the build tree
 * (tests, benchmarks), never for an installed library - the helper built
 * in that tree. */
static const char *helper_path(void)
{
    const char *cfg = cr_config()->layout_helper;
    if (cfg[0])
        return strcmp(cfg, "off") ? cfg : NULL;
    static char path[PATH_MAX], self[PATH_MAX];
    Dl_info di;
    if (!dladdr((void *)cr_layout_helper_start, &di) || !di.dli_fname)
        return NULL;
    const char *lib = di.dli_fname;
    if (lib[0] != '/') {
        /* The main program, named as it was started: its real path. */
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        if (k <= 0)
            return NULL;
        self[k] = 0;
        lib = self;
    }
    const char *slash = strrchr(lib, '/');
    if (slash && snprintf(path, sizeof path, "%.*s/%s", (int)(slash - lib), lib,
                          CRMPI_LAYOUT_HELPER_FROM_LIB) < (int)sizeof path &&
        access(path, X_OK) == 0)
        return path;
    size_t n = strlen(CRMPI_BUILD_TREE);
    if (!strncmp(lib, CRMPI_BUILD_TREE, n) && lib[n] == '/' &&
        access(CRMPI_LAYOUT_HELPER_BUILT, X_OK) == 0)
        return CRMPI_LAYOUT_HELPER_BUILT;
    return NULL;
}

/* The environment minus what would make the helper a crmpi program itself
 * (a preloaded runtime) or kill it at the application's fault points. */
static char **helper_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "CRMPI_FAULT=", 12))
            env[k++] = environ[i];
    return env;
}

int cr_layout_helper_start(struct cr_layout_helper **out)
{
    *out = NULL;
    const char *path = helper_path();
    if (!path)
        return -ENOENT;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return cr_neg_errno();
    struct cr_layout_helper *h = calloc(1, sizeof *h);
    char **env = helper_env();
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = h && env ? posix_spawn_file_actions_init(&fa) : ENOMEM;
    if (rc == 0) {
        /* Started by the writer thread too, which blocks every signal: the
         * helper gets an empty mask (and the application's handlers are
         * reset by exec anyway). */
        sigset_t none;
        sigemptyset(&none);
        rc = posix_spawnattr_init(&at);
        if (rc == 0) {
            rc = posix_spawnattr_setsigmask(&at, &none);
            if (rc == 0)
                rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
            if (rc == 0)
                rc = posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
            char *argv[] = { (char *)"crmpi-layout-helper", NULL };
            if (rc == 0)
                rc = posix_spawn(&h->pid, path, &fa, &at, argv, env);
            posix_spawnattr_destroy(&at);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    free(env);
    close(sv[1]);
    if (rc) {
        cr_warn("cannot start the layout helper %s (%s): epoch files are laid out in the "
                "checkpoint call", path, strerror(rc));
        close(sv[0]);
        free(h);
        return -rc;
    }
    h->fd = sv[0];
    h->owner = getpid();
    cr_dbg("layout helper %s started (pid %d)", path, (int)h->pid);
    *out = h;
    return 0;
}

void cr_layout_helper_stop(struct cr_layout_helper *h)
{
    if (!h)
        return;
    close(h->fd);
    /* Only its parent may reap it; in a fork child it is not ours. EOF
     * ends it; an application that ignores SIGCHLD has it reaped already. */
    if (h->owner == getpid())
        while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    free(h);
}

int cr_layout_helper_usable(const struct cr_layout_helper *h)
{
    return h && !h->dead && h->owner == getpid();
}

int cr_layout_helper_send(struct cr_layout_helper *h, const struct cr_layout_in *in)
{
    struct req q = { REQ_MAGIC, CR_FMT_VERSION, sizeof(struct cr_epoch_header),
                     (uint32_t)strlen(in->path), in->hdr->identity_len, in->ntopo, in->align };
    int rc = io_full(h->fd, &q, sizeof q, 1);
    if (!rc)
        rc = io_full(h->fd, (void *)in->path, q.path_len, 1);
    if (!rc)
        rc = io_full(h->fd, (void *)in->hdr, sizeof *in->hdr, 1);
    if (!rc)
        rc = io_full(h->fd, (void *)in->identity, q.id_len, 1);
    if (!rc && in->ntopo)
        rc = io_full(h->fd, (void *)in->topo_host, in->ntopo * CR_HOST_MAX, 1);
    if (!rc && in->ntopo)
        rc = io_full(h->fd, (void *)in->topo_len, in->ntopo * sizeof *in->topo_len, 1);
    if (rc)
        h->dead = 1;
    return rc;
}

int cr_layout_helper_receive(struct cr_layout_helper *h, struct cr_epoch_header *hdr,
                             uint64_t *topo_off, size_t ntopo, const char *path)
{
    struct rep r;
    int rc = io_full(h->fd, &r, sizeof r, 0);
    if (!rc && r.rc == 0 && r.ntopo != ntopo)
        rc = -EPROTO;
    if (!rc && r.rc == 0 && ntopo)
        rc = io_full(h->fd, topo_off, ntopo * sizeof *topo_off, 0);
    if (rc) {
        h->dead = 1;
        cr_errc(rc, "%s: no answer from the layout helper (pid %d)", path, (int)h->pid);
        return rc;
    }
    if (r.rc < 0)
        return r.rc;         /* the helper logged why */
    for (int i = 0; i < CR_DS_COUNT; i++)
        hdr->ds[i].offset = r.ds_off[i];
    return 0;
}
