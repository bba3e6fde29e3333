/*
 * h5layout.c - collective creation of an epoch file: every HDF5 call the
 * container makes when writing happens here, on the thread that calls
 * cr_epoch_begin, with identical arguments on every rank.
 *
 * Parallel HDF5 metadata operations are collective, so the sizes of the
 * shared datasets are agreed (allgather) before this runs and no rank ever
 * creates an object alone. Datasets are contiguous, allocated at creation
 * (H5D_ALLOC_TIME_EARLY) and never filled (H5D_FILL_TIME_NEVER): their raw
 * bytes then sit at a fixed offset (H5Dget_offset) that the writer fills
 * with plain pwrite after the file is closed, from any thread, without
 * HDF5 (which is not thread-safe here). File types are explicit
 * little-endian compounds whose member offsets are those of the packed
 * records in format.h, so the bytes we pwrite are exactly what h5dump shows.
 * The user block (ignored by HDF5) holds our own header, which the reader
 * uses instead of parsing HDF5 structures from hostile bytes.
 */
#include "store/internal.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/compiler.h"
#include "common/fault.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define INS(t, T, field, ftype) (H5Tinsert(t, #field, offsetof(T, field), ftype) < 0)

static hid_t host_type(void)
{
    hid_t s = H5Tcopy(H5T_C_S1);
    if (s < 0 || H5Tset_size(s, CR_HOST_MAX) < 0 || H5Tset_strpad(s, H5T_STR_NULLTERM) < 0) {
        if (s >= 0)
            H5Tclose(s);
        return H5I_INVALID_HID;
    }
    return s;
}

static hid_t index_type(void)
{
    typedef struct cr_index_row R;
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(R));
    if (t < 0)
        return t;
    if (INS(t, R, rank, H5T_STD_U32LE) || INS(t, R, flags, H5T_STD_U32LE) ||
        INS(t, R, addr, H5T_STD_U64LE) || INS(t, R, len, H5T_STD_U64LE) ||
        INS(t, R, offset, H5T_STD_U64LE) || INS(t, R, data_crc, H5T_STD_U32LE) ||
        INS(t, R, crc, H5T_STD_U32LE)) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static hid_t thread_type(void)
{
    typedef struct cr_thread_row R;
    hsize_t n = CR_CTX_BLOB;
    hid_t blob = H5Tarray_create2(H5T_STD_U8LE, 1, &n);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(R));
    int bad = blob < 0 || t < 0;
    if (!bad)
        bad = INS(t, R, rank, H5T_STD_U32LE) || INS(t, R, tid, H5T_STD_U32LE) ||
              INS(t, R, state, H5T_STD_U32LE) || INS(t, R, reserved, H5T_STD_U32LE) ||
              INS(t, R, stack_lo, H5T_STD_U64LE) || INS(t, R, stack_hi, H5T_STD_U64LE) ||
              INS(t, R, retval, H5T_STD_U64LE) || INS(t, R, ctx, blob) ||
              INS(t, R, reserved2, H5T_STD_U32LE) || INS(t, R, crc, H5T_STD_U32LE);
    if (blob >= 0)
        H5Tclose(blob);
    if (bad && t >= 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static hid_t rank_type(void)
{
    typedef struct cr_rank_row R;
    hid_t host = host_type();
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(R));
    int bad = host < 0 || t < 0;
    if (!bad)
        bad = INS(t, R, rank, H5T_STD_U32LE) || INS(t, R, pid, H5T_STD_U32LE) ||
              INS(t, R, region_base, H5T_STD_U64LE) || INS(t, R, region_size, H5T_STD_U64LE) ||
              INS(t, R, nextents, H5T_STD_U64LE) || INS(t, R, first_extent, H5T_STD_U64LE) ||
              INS(t, R, data_bytes, H5T_STD_U64LE) || INS(t, R, data_offset, H5T_STD_U64LE) ||
              INS(t, R, slice_bytes, H5T_STD_U64LE) || INS(t, R, nthreads, H5T_STD_U64LE) ||
              INS(t, R, first_thread, H5T_STD_U64LE) ||
              INS(t, R, identity_offset, H5T_STD_U64LE) ||
              INS(t, R, identity_len, H5T_STD_U32LE) || INS(t, R, identity_crc, H5T_STD_U32LE) ||
              INS(t, R, hostname, host) ||
              INS(t, R, reserved, H5T_STD_U32LE) || INS(t, R, crc, H5T_STD_U32LE);
    if (host >= 0)
        H5Tclose(host);
    if (bad && t >= 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* A contiguous, early-allocated, never-filled dataset; returns its raw
 * data offset in *off (0 when it has no bytes). */
static int make_dataset(hid_t loc, const char *name, hid_t type, hid_t space,
                        const char *path, uint64_t *off)
{
    int rc = -EIO;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
        cr_err("%s: dataset creation properties for /%s failed", path, name);
        goto close_dcpl;
    }
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) {
        cr_err("%s: H5Dcreate2(/%s) failed", path, name);
        goto close_dcpl;
    }
    haddr_t a = H5Dget_offset(d);
    *off = a == HADDR_UNDEF ? 0 : (uint64_t)a;
    rc = H5Dclose(d) < 0 ? -EIO : 0;
close_dcpl:
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return rc;
}

static int make_1d(hid_t loc, const char *name, hid_t type, uint64_t n, const char *path,
                   uint64_t *off)
{
    hsize_t dim = n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    if (space < 0) {
        cr_err("%s: H5Screate_simple(%llu) for /%s failed", path, (unsigned long long)n, name);
        return -EIO;
    }
    int rc = make_dataset(loc, name, type, space, path, off);
    H5Sclose(space);
    return rc;
}

static int attr_write(hid_t loc, const char *name, hid_t type, const void *val, const char *path)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space < 0 ? -1 : H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a < 0 || H5Awrite(a, type, val) < 0) ? -EIO : 0;
    if (rc < 0)
        cr_err("%s: writing attribute %s failed", path, name);
    if (a >= 0)
        H5Aclose(a);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

static int attr_u64(hid_t loc, const char *name, uint64_t v, const char *path)
{
    return attr_write(loc, name, H5T_STD_U64LE, &v, path);
}

static int attr_str(hid_t loc, const char *name, const char *s, size_t len, const char *path)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, len ? len : 1) < 0) {
        if (t >= 0)
            H5Tclose(t);
        return -EIO;
    }
    char empty = 0;
    int rc = attr_write(loc, name, t, len ? s : &empty, path);
    H5Tclose(t);
    return rc;
}

static int write_attributes(hid_t f, const struct cr_layout_in *in)
{
    const struct cr_epoch_header *h = in->hdr;
    char uuid[2 * CR_UUID_BYTES + 1], when[64];
    for (int i = 0; i < CR_UUID_BYTES; i++)
        snprintf(uuid + 2 * i, 3, "%02x", h->job_uuid[i]);
    time_t t = (time_t)h->ctime;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    int rc = 0;
    rc |= attr_str(f, "magic", h->magic, 8, in->path);
    rc |= attr_u64(f, "format_version", h->version, in->path);
    rc |= attr_u64(f, "epoch", h->epoch, in->path);
    rc |= attr_u64(f, "parent_epoch", h->parent, in->path);
    rc |= attr_u64(f, "full", h->full, in->path);
    rc |= attr_u64(f, "nranks", h->nranks, in->path);
    rc |= attr_u64(f, "page_size", h->page_size, in->path);
    rc |= attr_u64(f, "creation_time", h->ctime, in->path);
    rc |= attr_str(f, "creation_date", when, strlen(when), in->path);
    rc |= attr_str(f, "library_version", h->lib_version, strlen(h->lib_version), in->path);
    rc |= attr_str(f, "job_uuid", uuid, strlen(uuid), in->path);
    /* Compact attributes hold < 64 KiB; the user block has the full text. */
    rc |= attr_str(f, "build_ids", in->identity, CR_MIN(h->identity_len, 60000u), in->path);
    return rc ? -EIO : 0;
}

/* One fixed-length string dataset per distinct node, named by host. */
static int make_topology(hid_t f, const struct cr_layout_in *in, uint64_t *topo_off)
{
    hid_t g = H5Gcreate2(f, CR_GRP_TOPO, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        cr_err("%s: H5Gcreate2(/%s) failed", in->path, CR_GRP_TOPO);
        return -EIO;
    }
    int rc = 0;
    hid_t space = H5Screate(H5S_SCALAR);
    for (size_t i = 0; rc == 0 && i < in->ntopo; i++) {
        char name[CR_HOST_MAX];
        snprintf(name, sizeof name, "%s", in->topo_host[i]);
        for (char *p = name; *p; p++)
            if (*p == '/')
                *p = '_';
        hid_t t = H5Tcopy(H5T_C_S1);
        if (t < 0 || H5Tset_size(t, in->topo_len[i] ? in->topo_len[i] : 1) < 0)
            rc = -EIO;
        else
            rc = make_dataset(g, name, t, space, in->path, &topo_off[i]);
        if (t >= 0)
            H5Tclose(t);
    }
    H5Sclose(space);
    H5Gclose(g);
    return rc;
}

static int make_tables(hid_t f, const struct cr_layout_in *in, struct cr_epoch_header *hdr)
{
    hid_t ti = index_type(), tt = thread_type(), tr = rank_type();
    int rc = -EIO;
    if (ti < 0 || tt < 0 || tr < 0) {
        cr_err("%s: building the compound file types failed", in->path);
        goto close_types;
    }
    struct cr_ds_loc *ds = hdr->ds;
    uint64_t off[CR_DS_COUNT] = { 0 };
    rc = make_1d(f, CR_DS_PAGES, H5T_STD_U8LE, ds[CR_DS_ID_PAGES].count, in->path,
                 &off[CR_DS_ID_PAGES]);
    if (!rc)
        rc = make_1d(f, CR_DS_INDEX, ti, ds[CR_DS_ID_INDEX].count, in->path,
                     &off[CR_DS_ID_INDEX]);
    if (!rc)
        rc = make_1d(f, CR_DS_THREADS, tt, ds[CR_DS_ID_THREADS].count, in->path,
                     &off[CR_DS_ID_THREADS]);
    if (!rc)
        rc = make_1d(f, CR_DS_RANKS, tr, ds[CR_DS_ID_RANKS].count, in->path,
                     &off[CR_DS_ID_RANKS]);
    if (!rc)
        rc = make_1d(f, CR_DS_IDENT, H5T_C_S1, ds[CR_DS_ID_IDENT].count, in->path,
                     &off[CR_DS_ID_IDENT]);
    for (int i = 0; i < CR_DS_COUNT; i++)
        ds[i].offset = off[i];
close_types:
    if (ti >= 0) H5Tclose(ti);
    if (tt >= 0) H5Tclose(tt);
    if (tr >= 0) H5Tclose(tr);
    return rc;
}

/* The file-access list of the epoch files, made once per store: making
 * one duplicates the MPI communicator (a collective round per epoch). */
static hid_t layout_fapl(const struct cr_layout_in *in)
{
    if (*in->fapl >= 0)
        return *in->fapl;
    hid_t fapl = in->coll->fapl(in->coll);
    if (fapl < 0)
        return H5I_INVALID_HID;
    /* Large objects start on the alignment boundary; the user block is a
     * multiple of it, so the boundary is absolute in the file. */
    if (in->align > 1 && H5Pset_alignment(fapl, 65536, in->align) < 0) {
        cr_err("%s: H5Pset_alignment(%zu) failed", in->path, in->align);
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    *in->fapl = fapl;
    return fapl;
}

int cr_layout_create(const struct cr_layout_in *in, struct cr_epoch_header *hdr,
                     uint64_t *topo_off)
{
    int rc = -EIO;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    hid_t fapl = layout_fapl(in);
    if (fcpl < 0 || fapl < 0 || H5Pset_userblock(fcpl, hdr->userblock) < 0) {
        cr_err("%s: file property lists (user block %u) failed", in->path, hdr->userblock);
        goto close_fcpl;
    }
    hid_t f = cr_fault_errno("epoch-create") ? H5I_INVALID_HID :
             H5Fcreate(in->path, H5F_ACC_TRUNC, fcpl, fapl);
    if (f < 0) {
        cr_err("%s: H5Fcreate failed (rank %d of %d)", in->path, in->coll->rank, in->coll->size);
        goto close_fcpl;
    }
    rc = write_attributes(f, in);
    if (!rc)
        rc = make_tables(f, in, hdr);
    if (!rc)
        rc = make_topology(f, in, topo_off);
    if (H5Fclose(f) < 0) {
        cr_err("%s: H5Fclose failed", in->path);
        rc = rc ? rc : -EIO;
    }
close_fcpl:
    if (fcpl >= 0)
        H5Pclose(fcpl);
    return rc;
}
