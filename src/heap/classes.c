/*
 * classes.c - the size classes of small objects and the shape of their slabs.
 *
 * 36 classes from 16 B to 16 KiB: multiples of 16 up to 128, then four per
 * doubling (at most 25% internal waste). A slab is 64 KiB, or for classes
 * above 6 KiB big enough for 8 objects plus a header page. Objects of
 * power-of-two classes are aligned to min(size, 4096), which is how
 * cr_posix_memalign serves small aligned requests without a separate path;
 * the others are 16-byte aligned. The slab header (struct slab + two
 * bitmaps) precedes the first object.
 */
#include "heap/heap_internal.h"

struct heap_class heap_classes[HEAP_NCLASS];

static uint32_t class_size(unsigned c)
{
    if (c < 8)
        return (c + 1) * 16;
    unsigned b = 7 + (c - 8) / 4, sub = (c - 8) % 4;
    return (4 + sub + 1) << (b - 2);
}

static void class_shape(struct heap_class *k)
{
    uint32_t size = k->size;
    size_t bytes = 64 * 1024;
    if ((size_t)size * 8 + HEAP_PAGE > bytes)
        bytes = cr_align_up((size_t)size * 8 + HEAP_PAGE, HEAP_PAGE);
    uint32_t align = cr_is_pow2(size) ? CR_MIN(size, (uint32_t)HEAP_PAGE) : HEAP_ALIGN;
    /* The header depends on the object count: start from an upper bound and
     * shrink until header and objects fit. */
    uint32_t nobj = (uint32_t)(bytes / size), first;
    for (;;) {
        uint32_t words = (nobj + 63) / 64;
        first = (uint32_t)cr_align_up(sizeof(struct slab) + 2 * words * sizeof(uint64_t), align);
        if (first + (size_t)nobj * size <= bytes)
            break;
        nobj--;
    }
    k->nobj = nobj;
    k->first = first;
    k->words = (nobj + 63) / 64;
    k->npages = (uint32_t)(bytes / HEAP_PAGE);
    k->recip = ((1ULL << 40) + size - 1) / size;
}

void heap_classes_init(void)
{
    for (unsigned c = 0; c < HEAP_NCLASS; c++) {
        heap_classes[c].size = class_size(c);
        class_shape(&heap_classes[c]);
    }
}

/* FNV-1a over the class table and structure sizes: a heap image written by
 * a build with another layout is refused instead of misread. */
uint64_t heap_classes_hash(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char *p = (const unsigned char *)heap_classes;
    for (size_t i = 0; i < sizeof heap_classes; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    size_t sizes[] = { sizeof(struct heap_root), sizeof(struct heap_cache),
                       sizeof(struct slab), sizeof(struct hpage), HEAP_NCACHE };
    p = (const unsigned char *)sizes;
    for (size_t i = 0; i < sizeof sizes; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
