/*
 * fuzz_index.c - libFuzzer harness for the index parser (cr_index_decode).
 *
 * The index is the first file a restart reads, straight from a directory
 * anyone with write access could have edited. Besides "no crash, no
 * sanitizer report", the harness checks a property: an input the parser
 * accepts is exactly what the encoder would write for the parsed index
 * (decode -> encode is the identity), so no accepted index can carry
 * bytes the parser ignored, and the accepted entries satisfy the
 * invariants restore relies on (strictly increasing epochs, canonical
 * names, parents older than their children).
 */
#include "store/internal.h"
#include "common/config.h"
#include "fuzz_fixup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!getenv("FUZZ_LOG"))
        setenv("CRMPI_LOG", "none", 1);
    (void)cr_config_reload();
    return 0;
}

static void check_invariants(const struct cr_index *ix)
{
    for (uint32_t i = 0; i < ix->n; i++) {
        const struct cr_index_entry *e = &ix->e[i];
        char want[CR_EPOCH_NAME_MAX];
        snprintf(want, sizeof want, CR_EPOCH_FMT, (unsigned long long)e->epoch);
        if (e->epoch == 0 || (i && e->epoch <= ix->e[i - 1].epoch) || strcmp(e->name, want) ||
            (!(e->flags & CR_ENTRY_FULL) && (e->parent == 0 || e->parent >= e->epoch)))
            __builtin_trap();
    }
}

static void one(const uint8_t *data, size_t size)
{
    struct cr_index ix;
    if (cr_index_decode(data, size, "fuzz-index", &ix) < 0)
        return;
    check_invariants(&ix);
    void *buf;
    size_t len;
    if (cr_index_encode(&ix, &buf, &len) == 0) {
        if (len != size || memcmp(buf, data, size))
            __builtin_trap();
        free(buf);
    }
    cr_index_free(&ix);
}

/* Each input as it is, then with its checksum made right (fuzz_fixup.h). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fz_fix_index(copy, size);
    one(copy, size);
    free(copy);
    return 0;
}
