/* Fuzz target: model specs (JSON) through lb_model_create_from_json, which parses,
 * validates, infers shapes and plans the backward pass. A spec that is accepted is also
 * planned for a small batch and run forward and backward once, so shape inference that
 * accepts an inconsistent graph shows up as a memory error under ASan. */
#include "graph/graph.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lb_model *m = NULL;
    if (lb_model_create_from_json(&m, (const char *)data, size, "fuzz.json") != LB_OK) {
        if (m || !lb_last_error()[0]) abort(); /* failure must leave no model and say why */
        return 0;
    }
    /* keep the run small: big (valid) graphs are legal but not what this target probes */
    int64_t work = 0;
    for (int i = 0; i < m->n_nodes; i++) work += m->nodes[i].out_size + m->nodes[i].macs;
    if (work < (1 << 22) && m->n_params < (1 << 20) && lb_graph_reserve(m, 2, 1) == LB_OK) {
        float *x = calloc((size_t)(2 * m->in_size), sizeof(float));
        if (x) {
            lb_graph_set_input(m, x, 2);
            lb_graph_forward(m, 2, 1);
            lb_node *o = lb_graph_output(m);
            int32_t y[2] = {0, 1};
            lb_softmax_xent(o->dout, NULL, o->out, y, 2, o->c);
            lb_graph_backward(m, 2);
            free(x);
        }
    }
    lb_model_destroy(m);
    return 0;
}
