/* gpu_probe.c — exit 0 when this machine has a CUDA driver and a GPU (prints its name), else
 * print a visible "SKIP: <reason>" line and exit 77. The GPU test scripts start with it. */
#include "runtime/cuda_driver.h"

#include <stdio.h>

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "gpu test";
#ifdef KILN_HAVE_CUDA
    const kiln_cuda_driver *cu;
    if (kiln_cuda_driver_get(&cu) != KILN_OK) {
        printf("SKIP: %s: %s\n", who, kiln_last_error());
        return 77;
    }
    CUdevice dev;
    char name[256] = "";
    CUresult r = cu->device_get(&dev, 0);
    if (r == CUDA_SUCCESS) r = cu->device_get_name(name, (int)sizeof name, dev);
    if (r != CUDA_SUCCESS) {
        printf("SKIP: %s: the CUDA driver finds no usable device (CUresult %d)\n", who, (int)r);
        return 77;
    }
    printf("%s: running on %s\n", who, name);
    return 0;
#else
    printf("SKIP: %s: kiln was built without CUDA (KILN_CUDA=OFF)\n", who);
    return 77;
#endif
}
