"""The conformance engine: AT channel, vector model/loader/runner, timelines.

Knows nothing of pytest (``fixtures/`` adapts it) and nothing of the emulator's
or the reference server's internals: a module is reached through a pyserial
URL, the network side through the small ``Network`` protocol in ``runner``.
"""
