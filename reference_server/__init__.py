"""The network side of the conformance suite: a CoAP server that records every datagram.

Vectors drive a module over AT; this server answers per a ``Behaviour`` and
keeps a ``Capture`` of everything on the wire so vectors can assert on packets.
"""
from reference_server.behaviour import Behaviour, Reply, ResourceSpec
from reference_server.capture import (
    DOWNLINK, UPLINK, Capture, CaptureHookError, Datagram, self_test,
)
from reference_server.pcap import write_pcap
from reference_server.server import ReferenceServer

__all__ = [
    "ReferenceServer", "Behaviour", "Reply", "ResourceSpec", "Capture", "Datagram",
    "write_pcap", "UPLINK", "DOWNLINK", "CaptureHookError", "self_test",
]
