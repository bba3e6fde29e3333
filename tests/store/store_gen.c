/*
 * store_gen.c - write a small checkpoint directory for the tool tests:
 *   store_gen DIR NEPOCHS     (serial; full every 3rd epoch, keep all)
 */
#include "store_helpers.h"
#include "common/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    static uint8_t m[32 * CR_PAGE_SIZE];
    uint8_t d[32], z[32];
    struct th_mem mem = { m, 32 };
    struct cr_store *st;
    struct cr_store_opts o = { .full_every = 3, .keep = 100, .align = 4096 };
    if (cr_store_open(&st, argv[1], cr_coll_self(), &o) < 0)
        return 1;
    int n = atoi(argv[2]);
    for (int e = 1; e <= n; e++) {
        for (size_t p = 0; p < 32; p++) {
            d[p] = e == 1 || (p + (size_t)e) % 4 == 0;
            z[p] = e > 1 && (p + (size_t)e) % 11 == 0;
            if (d[p])
                memset(m + p * CR_PAGE_SIZE, e + (int)p, CR_PAGE_SIZE);
            if (z[p])
                memset(m + p * CR_PAGE_SIZE, 0, CR_PAGE_SIZE);
        }
        if (th_write_epoch(st, &mem, cr_store_next_is_full(st), d, z, 2, NULL) < 0)
            return 1;
    }
    cr_store_close(st);
    return 0;
}
