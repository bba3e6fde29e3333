/*
 * tracker.c - choosing a dirty-page tracker at run time.
 *
 * Preference order: uffd-async (no fault handling at all, one ioctl per
 * collection), uffd-sync (a handler thread resolves each first write),
 * mprotect (a SIGSEGV per first write, VMA splitting). Each tracker's probe
 * asks the running kernel, so the same binary uses the best one available;
 * CRMPI_TRACKER (or the open parameters) forces one, and forcing one that
 * cannot work is an error rather than a silent downgrade.
 */
#include "tracker.h"
#include "common/errors.h"
#include "common/log.h"

static const struct cr_tracker_ops *const trackers[] = {
    &cr_tracker_uffd_async,
    &cr_tracker_uffd_sync,
    &cr_tracker_mprotect,
};

const char *cr_tracker_kind_name(int kind)
{
    if (kind == CR_TRACKER_AUTO)
        return "auto";
    for (size_t i = 0; i < CR_ARRAY_SIZE(trackers); i++)
        if ((int)trackers[i]->kind == kind)
            return trackers[i]->name;
    return "unknown";
}

const struct cr_tracker_ops *cr_tracker_select(int kind, int *err)
{
    const char *why = "";
    if (kind != CR_TRACKER_AUTO) {
        for (size_t i = 0; i < CR_ARRAY_SIZE(trackers); i++) {
            if ((int)trackers[i]->kind != kind)
                continue;
            int rc = trackers[i]->probe(&why);
            if (rc == 0) {
                cr_info("dirty-page tracker: %s (forced)", trackers[i]->name);
                return trackers[i];
            }
            cr_errc(rc, "dirty-page tracker %s was requested (CRMPI_TRACKER) but is not usable "
                    "here: %s", trackers[i]->name, why);
            *err = -ENOSYS;
            return NULL;
        }
        cr_err("unknown dirty-page tracker kind %d", kind);
        *err = -EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < CR_ARRAY_SIZE(trackers); i++) {
        int rc = trackers[i]->probe(&why);
        if (rc == 0) {
            cr_info("dirty-page tracker: %s (best usable)", trackers[i]->name);
            return trackers[i];
        }
        cr_info("dirty-page tracker %s not usable: %s (%s)", trackers[i]->name, why,
                cr_strerror(rc));
    }
    cr_err("no dirty-page tracker is usable");
    *err = -ENOSYS;
    return NULL;
}
