"""The receive use case shared by the three webhook functions: size check, signature check on
the raw bytes, the provider adapter's parse into canonical records, one conditional write per
record; and the CRM enrichment that reads thin events' full records off the request path.

Provider adapters live beside their function (``functions/*/..._providers``) and import this
package. May import ``core`` and ``store``.
"""
