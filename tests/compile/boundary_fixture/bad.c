/* A deliberate violation, for checking that check_boundary.cmake catches it. */
#include <libpq-fe.h>
#include "../access/access_internal.h"
#include "access/session.h"
#include "access/sqlscan.h"
#include "access/logs.h"
