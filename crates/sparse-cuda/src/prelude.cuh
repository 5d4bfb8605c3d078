/* NVRTC prelude for kernels.cu: each DS_KERNEL is an extern "C" global function over n_items
 * independent items, which FOR_EACH_ITEM spreads over a grid-stride loop; DS_DEVICE marks a
 * helper function the kernels call. */
#define DS_KERNEL(name, ...) \
    extern "C" __global__ void name(unsigned long long n_items, __VA_ARGS__)
#define FOR_EACH_ITEM(i)                                                              \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; \
         i < n_items; i += (unsigned long long)gridDim.x * blockDim.x)
#define DS_DEVICE __device__ __forceinline__
__device__ __forceinline__ unsigned float_bits(float x) { return __float_as_uint(x); }
