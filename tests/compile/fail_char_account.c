/* Must NOT compile: an account id string is not a tenant transaction. */
#include "access/outcome.h"

access_status_t bypass_with_account_string(const char *account_id, access_error_t *err);

access_status_t bypass_with_account_string(const char *account_id, access_error_t *err)
{
    access_outcome_kind_t kind;
    char *response = 0;
    return access_outcome_claim(account_id, "req_1", "payment.get", "{}", &kind, &response, err);
}
