/* handler_internal — how a job type is described inside src/handlers/. */
#ifndef TALLY_HANDLERS_INTERNAL_H
#define TALLY_HANDLERS_INTERNAL_H

#include "handlers/handler.h"

typedef handler_status_t (*handler_execute_fn)(access_tx_t *tx, const json_t *payload,
                                               json_t **result, handler_error_t *err);

struct handler {
    const char *name;
    handler_execute_fn execute;
};

#endif
