"""Schemathesis hooks (loaded by `st run` through SCHEMATHESIS_HOOKS) that steer part of the
generated requests onto records the fuzz test made first, so grants, applications, captures,
releases and voids reach the ledger instead of stopping at 404.

DRAWDOWN_FUZZ_KNOWN holds the made ids as JSON: {"account_id": [...], "credit_id": [...], ...}.
Every generated value stays possible; a known id is one more choice."""

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

KNOWN: dict[str, list[str]] = json.loads(os.environ.get("DRAWDOWN_FUZZ_KNOWN", "{}"))

# the same ids under the names the bodies and queries use
_ALIASES = {
    "accountId": "account_id",
    "customerId": "customer_id",
    "invoiceId": "invoice_id",
    "id": "credit_id",
}


def _with_known(values: dict[str, Any], names: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in values.items():
        known = KNOWN.get(names.get(name, name), [])
        if known and isinstance(value, str | None):
            fields[name] = st.sampled_from([value, *known])
        else:
            fields[name] = st.just(value)
    return st.fixed_dictionaries(fields)


@schemathesis.hook
def flatmap_path_parameters(
    _context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not path_parameters:
        return st.just(path_parameters)
    return _with_known(path_parameters, {})


@schemathesis.hook
def flatmap_query(
    _context: schemathesis.HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not query:
        return st.just(query)
    return _with_known(query, {"id": "credit_id"})


@schemathesis.hook
def flatmap_body(_context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict):
        return st.just(body)
    requests = body.get("creditRequests")
    if isinstance(requests, list) and all(isinstance(r, dict) for r in requests):
        return st.tuples(*(_with_known(r, _ALIASES) for r in requests)).map(
            lambda made: {**body, "creditRequests": list(made)}
        )
    return _with_known(body, {k: v for k, v in _ALIASES.items() if k != "id"})
