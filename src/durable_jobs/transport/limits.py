"""The transport's limits, in a module of their own: hooks read them at import time, and importing them must
not load the HTTP stack (aiohttp, yarl, multidict) onto the triggerer's event loop."""

#: default ceiling of a response body; a connection's extra ``max_response_bytes`` changes it
DEFAULT_MAX_BODY = 16 * 1024 * 1024
