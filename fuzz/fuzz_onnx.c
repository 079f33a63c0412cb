/* fuzz_onnx — ONNX bytes -> kiln_model_load_bytes (protobuf parse, import into the IR, shape
 * inference, verification) through the public API; on success, the graph's I/O queries. External
 * data is refused (base_dir NULL): the path checks have their own tests (docs/reliability.md). */
#include "fuzz_common.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_fuzz_init_limits();
    kiln_graph *g = (kiln_graph *)1;
    kiln_status st = kiln_model_load_bytes(data, size, NULL, &g);
    if (st != KILN_OK) {
        kiln_fuzz_check_failure(st, "kiln_model_load_bytes");
        if (g) abort(); /* no half-made graph on failure */
        return 0;
    }
    for (int i = 0; i < kiln_graph_num_inputs(g); i++) {
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        if (!kiln_graph_input_name(g, i) || kiln_graph_input_info(g, i, &dt, &rank, dims) != KILN_OK) abort();
    }
    for (int i = 0; i < kiln_graph_num_outputs(g); i++) {
        kiln_dtype dt;
        int rank;
        int64_t dims[KILN_MAX_RANK];
        if (!kiln_graph_output_name(g, i) || kiln_graph_output_info(g, i, &dt, &rank, dims) != KILN_OK) abort();
    }
    kiln_graph_free(g);
    return 0;
}
