"""Generic REST handlers: one code path for every kind (get/list/watch/create/update/patch/apply/delete).

`dispatch.ResourceHandlers` parses a request (`requestinfo`), authorizes it (`authorization`) and
calls the generic storage (`rest.Rest`), which defers every kind-specific rule to the kind's
Strategy in `podns.api.resources`.
"""
