/*
 * jobctl.c - job control: when a checkpoint is due, and stopping cleanly on
 * a signal (Slurm's time-limit warning).
 *
 * The stop signal handler only stores the signal number in a sig_atomic_t
 * (async-signal-safe), then calls a handler the program had installed
 * before, if any. Nothing acts on the flag asynchronously: ranks agree on
 * it at the program's next collective crmpi_need_checkpoint() (a 2-int
 * PMPI_Allreduce MAX of "stop seen" and "interval elapsed", so every rank
 * gets the same answer although their clocks and signals differ) and again
 * inside every checkpoint (crmpi_jobctl_checkpoint_agree, one
 * PMPI_Allreduce MAX of the stop flag, the checkpoint cost and the
 * checkpoint's status, which it agrees on at the same time). That second
 * agreement is what makes crmpi_should_exit() true on every rank right
 * after the same checkpoint, so a program that just calls crmpi_checkpoint()
 * every step stops correctly too.
 *
 * The interval is CRMPI_CKPT_INTERVAL seconds, or Young's optimum
 * sqrt(2 * C * MTBF) (Daly's first-order result) with C the largest cost
 * any rank paid for the last checkpoint and MTBF from CRMPI_MTBF. Before
 * the first checkpoint of a run, C is the cost recorded in crmpi-job.last
 * by the run before, else 1 second.
 *
 * Files for the launcher (crmpi-run), written by rank 0 only, each through
 * a temporary file and rename so a reader never sees half of one:
 *   $CRMPI_DIR/crmpi-job.last     after every committed checkpoint
 *   $CRMPI_DIR/crmpi-job.stopped  after the stop checkpoint
 * Both are "key=value" lines. They describe the checkpoint store, they are
 * not part of it: losing one costs a less precise launcher message only.
 */
#include "jobctl.h"
#include "polite.h"

#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "exec/exec.h"

#include <pthread.h>

#define JOBCTL_DEFAULT_COST 1.0    /* seconds, until a cost is measured */
#define JOBCTL_LAST    "crmpi-job.last"
#define JOBCTL_STOPPED "crmpi-job.stopped"

static const int stop_signo[] = { SIGUSR1, SIGTERM };   /* CRMPI_STOP_SIGNALS bits */

static volatile sig_atomic_t stop_signal;   /* set by the handler only */
static struct sigaction old_action[CR_ARRAY_SIZE(stop_signo)];
static int installed[CR_ARRAY_SIZE(stop_signo)];
static int initialized;
static int stop_logged;
static int exit_agreed;          /* agreed in a committed checkpoint */
static int exit_signal;          /* signal behind it (for the marker) */
static double last_time;         /* monotonic time of the last checkpoint (or init) */
static double cost = -1;         /* seconds; < 0: not known */

/* Square root by Newton's iteration: libcrmpi does not link libm for one
 * call. x >= 0; converges to full precision in a few dozen steps. */
static double sqrt_pos(double x)
{
    if (!(x > 0))
        return 0;
    double r = x > 1 ? x : 1;
    for (int i = 0; i < 200; i++) {
        double next = 0.5 * (r + x / r);
        if (next >= r)
            break;
        r = next;
    }
    return r;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int old_idx(int sig)
{
    for (size_t i = 0; i < CR_ARRAY_SIZE(stop_signo); i++)
        if (stop_signo[i] == sig)
            return (int)i;
    return -1;
}

/* Async-signal-safe: stores the number, then chains. */
static void on_stop_signal(int sig, siginfo_t *si, void *uc)
{
    stop_signal = sig;
    int i = old_idx(sig);
    if (i < 0)
        return;
    const struct sigaction *o = &old_action[i];
    if (o->sa_flags & SA_SIGINFO) {
        if (o->sa_sigaction)
            o->sa_sigaction(sig, si, uc);
    } else if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN && o->sa_handler) {
        o->sa_handler(sig);
    }
}

/* The previous run's cost, so the first interval of a restarted job is
 * not guessed. Any rank may read it: the value is agreed on later. */
static void read_previous_cost(const char *dir)
{
    char path[PATH_MAX + 32], line[256];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, JOBCTL_LAST) >= sizeof path)
        return;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        double c;
        if (sscanf(line, "cost=%lf", &c) == 1 && c >= 0 && c < 1e300)
            cost = c;
    }
    fclose(f);
}

int crmpi_jobctl_init(void)
{
    if (initialized)
        return 0;
    const struct cr_config *cfg = cr_config();
    for (size_t i = 0; i < CR_ARRAY_SIZE(stop_signo); i++) {
        if (!(cfg->stop_signals & (1 << i)))
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_stop_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(stop_signo[i], &sa, &old_action[i]) != 0) {
            int err = errno;
            cr_perr("sigaction(%s)", strsignal(stop_signo[i]));
            crmpi_jobctl_fini();
            return -err;
        }
        installed[i] = 1;
    }
    read_previous_cost(cfg->dir);
    last_time = now();
    initialized = 1;
    return 0;
}

void crmpi_jobctl_fini(void)
{
    for (size_t i = 0; i < CR_ARRAY_SIZE(stop_signo); i++) {
        if (installed[i] && sigaction(stop_signo[i], &old_action[i], NULL) != 0)
            cr_perr("sigaction(%s) restoring the program's handler", strsignal(stop_signo[i]));
        installed[i] = 0;
    }
    initialized = 0;
}

void crmpi_jobctl_reset(void)
{
    stop_signal = 0;
    stop_logged = 0;
    exit_agreed = 0;
    exit_signal = 0;
    cost = -1;
    last_time = now();
}

void crmpi_jobctl_record_cost(double seconds)
{
    if (seconds >= 0 && seconds < 1e300)
        cost = seconds;
}

double crmpi_jobctl_interval(void)
{
    const struct cr_config *cfg = cr_config();
    if (cfg->ckpt_interval)
        return cfg->ckpt_interval;
    double c = cost >= 0 ? cost : JOBCTL_DEFAULT_COST;
    return sqrt_pos(2.0 * c * (double)cfg->mtbf);
}

/* MPI usable now? The public calls must not crash a program that calls
 * them outside MPI_Init..MPI_Finalize. */
static int mpi_ready(void)
{
    int init = 0, fini = 0;
    if (PMPI_Initialized(&init) != MPI_SUCCESS || PMPI_Finalized(&fini) != MPI_SUCCESS)
        return 0;
    return init && !fini;
}

int crmpi_need_checkpoint(void)
{
    if (!mpi_ready()) {
        cr_err("crmpi_need_checkpoint() called outside MPI_Init..MPI_Finalize");
        return CR_ESTATE;
    }
    if (crmpi_jobctl_init() != 0)
        return CR_ESTATE;
    int sig = stop_signal;
    if (sig && !stop_logged) {
        stop_logged = 1;
        cr_info("stop requested by %s: checkpointing", strsignal(sig));
    }
    int flags[2] = { sig != 0, now() - last_time >= crmpi_jobctl_interval() };
    /* Blocking, as the program's own MPI_Allreduce would be, not the
     * protocol's polite wait (polite.c): this is the program's per-step
     * question, not part of a checkpoint, and a rank that finished its step
     * early and napped here came back up to a nap late for every round of
     * the reduction. perf/mpi (steps of 500-750 us of work, the last rank
     * 50% longer): 792-796 vs 753 us a step at 2 ranks, 1717-1737 vs 1423 us at
     * 4 ranks on 2 CPUs, against the program calling MPI_Allreduce itself;
     * blocking, the same as it (perf/results/mpi.txt). */
    int rc = PMPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        cr_err("crmpi_need_checkpoint: MPI_Allreduce failed (MPI error %d)", rc);
        return CR_EREMOTE;
    }
    return flags[0] || flags[1];
}

int crmpi_should_exit(void)
{
    return exit_agreed;
}

int crmpi_exit_code(void)
{
    return exit_agreed ? CRMPI_EXIT_STOPPED : 0;
}

/* Write dir/name atomically (temporary file, fsync if durable, rename). The temporary
 * has a fixed name (only rank 0 of the one job using the directory writes
 * these files): a writer killed before its rename leaves one that the next
 * write truncates and renames, where a name per process (".tmp.<pid>")
 * left one more file in the checkpoint directory for good at every such
 * kill. */
static int write_file(const char *dir, const char *name, const char *text, int durable)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        cr_perr("open(%s)", tmp);
        return -err;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail_write;
        done += (size_t)n;
    }
    if (durable && fsync(fd) != 0)
        goto fail_write;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_write;
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        cr_perr("rename(%s, %s)", tmp, path);
        unlink(tmp);
        return -err;
    }
    return 0;
fail_write: {
        int err = errno;
        cr_perr("writing %zu bytes to %s", len, tmp);
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return -err;
    }
}

/* The record of the last checkpoint, written by the checkpoint writer
 * thread after its job (cr_writer_then): its rename took 17-19 ms inside
 * the checkpoint call on ext4 while the writer's file system work was
 * under way (0.5 ms alone), most of a 1-rank checkpoint's cost. */
static struct {
    pthread_mutex_t mu;
    char text[PATH_MAX + 512];
    uint64_t epoch;
    int pending;
} rec = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void flush_record(void *unused)
{
    char text[sizeof rec.text];
    pthread_mutex_lock(&rec.mu);
    int pending = rec.pending;
    uint64_t epoch = rec.epoch;
    memcpy(text, rec.text, sizeof text);
    rec.pending = 0;
    pthread_mutex_unlock(&rec.mu);
    /* Not fsynced either: the rename keeps it whole for readers, and a
     * record lost with its node is one epoch behind, which only makes a
     * launcher message less precise. */
    if (pending && write_file(cr_config()->dir, JOBCTL_LAST, text, 0) != 0)
        cr_warn("could not record checkpoint %llu in %s/%s for the launcher",
                (unsigned long long)epoch, cr_config()->dir, JOBCTL_LAST);
}

static void write_job_files(uint64_t epoch, int nranks, int stopped, int sig)
{
    const struct cr_config *cfg = cr_config();
    char exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *job = getenv("SLURM_JOB_ID");
    char text[PATH_MAX + 512];
    pthread_mutex_lock(&rec.mu);
    snprintf(rec.text, sizeof rec.text,
             "epoch=%llu\nranks=%d\nexe=%s\nslurm_job=%s\ntime=%lld\ncost=%.6f\ninterval=%.3f\n",
             (unsigned long long)epoch, nranks, exe, job ? job : "",
             (long long)time(NULL), cost >= 0 ? cost : 0.0, crmpi_jobctl_interval());
    rec.epoch = epoch;
    rec.pending = 1;
    pthread_mutex_unlock(&rec.mu);
    /* After a stop checkpoint the writer is idle (settle waited for the
     * commit): written here, before the stop marker. */
    cr_writer_then(flush_record, NULL);
    if (!stopped)
        return;
    const char *name = sig == SIGTERM ? "TERM" : sig == SIGUSR1 ? "USR1" : "unknown";
    snprintf(text, sizeof text, "signal=%s\nepoch=%llu\nslurm_job=%s\n", name,
             (unsigned long long)epoch, job ? job : "");
    if (write_file(cfg->dir, JOBCTL_STOPPED, text, 1) != 0)
        cr_err("could not write the stop marker %s/%s: the launcher will take this "
               "stop for a failure and relaunch", cfg->dir, JOBCTL_STOPPED);
}

static int fixed_epoch(int stop, uint64_t *epoch, void *arg)
{
    *epoch = *(const uint64_t *)arg;
    return 0;
}

int crmpi_jobctl_after_checkpoint(uint64_t epoch)
{
    return crmpi_jobctl_checkpoint_agree(0, -1, fixed_epoch, &epoch);
}

int crmpi_jobctl_checkpoint_agree(int status, double seconds,
                                  int (*settle)(int stop, uint64_t *epoch, void *arg), void *arg)
{
    uint64_t epoch = 0;
    if (!mpi_ready() || crmpi_jobctl_init() != 0)
        return CR_ESTATE;
    int sig = stop_signal;
    double mine = seconds >= 0 && seconds < 1e300 ? seconds : cost;
    /* One collective: [0] did a stop signal arrive, [1] the largest cost,
     * [2] the checkpoint's status on the rank where it is worst (negated:
     * the maximum finds it; doubles hold every int exactly). */
    double v[3] = { sig ? (double)sig : 0.0, mine >= 0 ? mine : 0.0,
                    status < 0 ? -(double)status : 0.0 };
    MPI_Request r;
    int rc = PMPI_Iallreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS)
        rc = crmpi_wait_polite(&r);
    if (rc != MPI_SUCCESS) {
        cr_err("after a checkpoint: MPI_Allreduce failed (MPI error %d)", rc);
        return status < 0 ? status : CR_EREMOTE;
    }
    if (v[2] > 0)
        return -(int)v[2];     /* failed somewhere: nothing recorded */
    if (mine >= 0)
        cost = v[1];
    last_time = now();
    rc = settle(v[0] != 0, &epoch, arg);
    if (rc)
        return rc;
    if (v[0] != 0) {
        exit_agreed = 1;
        exit_signal = (int)v[0];
        cr_info("checkpoint %llu committed after %s: the program should exit",
                (unsigned long long)epoch, strsignal(exit_signal));
    }
    int rank = 0, size = 1;
    if (PMPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS ||
        PMPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS)
        return CR_EREMOTE;
    if (rank == 0)
        write_job_files(epoch, size, exit_agreed, exit_signal);
    return 0;
}
