/* The kernel emulator: src/kernels.cu compiled as plain C for the host. Each kernel becomes a
 * function `dsemu_<name>` that runs its items one after another, which is a valid schedule of
 * the GPU version because kernels.cu's items are independent (the only shared updates,
 * histogram counts, are atomic on the GPU and sequential here). */
#include <math.h>
#include <string.h>

#define DS_KERNEL(name, ...) void dsemu_##name(unsigned long long n_items, __VA_ARGS__)
#define FOR_EACH_ITEM(i) for (unsigned long long i = 0; i < n_items; ++i)
#define DS_DEVICE static inline
#define atomicAdd(p, v) (*(p) += (v))

static unsigned float_bits(float x)
{
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}

#include "../src/kernels.cu"
