/*
 * errors.c - text for status codes (cr_strerror).
 */
#include "errors.h"
#include "compiler.h"

#include <string.h>

static const struct { int code; const char *text; } cr_errors[] = {
    { CR_ECORRUPT,     "checkpoint data is corrupt (checksum or structure)" },
    { CR_EFORMAT,      "not a crmpi checkpoint, or an unsupported format version" },
    { CR_EMISMATCH,    "checkpoint was written by another executable or library build" },
    { CR_ENOCKPT,      "no committed checkpoint" },
    { CR_ERANKS,       "checkpoint was written by a job with another number of ranks" },
    { CR_ECOLLISION,   "the persistent region's fixed address is already in use" },
    { CR_ESTATE,       "call not valid in the current state" },
    { CR_EUNSUPPORTED, "operation not supported here (cannot be checkpointed or rolled back)" },
    { CR_EFOREIGN,     "checkpoint belongs to another job" },
    { CR_EPERM_TRUST,  "checkpoint files are not owned by this user or are writable by others" },
    { CR_EINJECTED,    "failure injected for testing (CRMPI_FAULT)" },
    { CR_EREMOTE,      "operation failed on another rank" },
};

CR_EXPORT const char *cr_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code == CR_RESTARTED)
        return "restarted from a checkpoint";
    if (code == CR_ROLLEDBACK)
        return "rolled back to a checkpoint";
    if (code > 0)
        return "unknown status";
    for (size_t i = 0; i < CR_ARRAY_SIZE(cr_errors); i++)
        if (cr_errors[i].code == code)
            return cr_errors[i].text;
    if (code > -256)
        return strerror(-code);   /* glibc's strerror is thread-safe for known codes */
    return "unknown crmpi error";
}
