"""The network side of the conformance suite: a CoAP server that records every datagram.

Vectors drive a module over AT; this server answers per a ``Behaviour`` and
keeps a ``Capture`` of everything on the wire so vectors can assert on packets.

Modules, each with one job (imports go down this list, never up):

* ``capture``   the capture store (datagrams, marks, bounded memory);
* ``network``   the simulated network: faults, reply actions, the downlink rewriter;
* ``hooks``     every use of aiocoap's private API, and its self-test;
* ``behaviour`` the model of a vector's ``server:`` mapping, and its parser;
* ``observe``   RFC 7641 notifications;
* ``resources`` the aiocoap resource serving a behaviour (RFC 7252 request checks);
* ``dtls``      the DTLS-PSK front; ``pcap`` the pcap writer;
* ``server``    ``ReferenceServer``, which puts them together.
"""
from reference_server.behaviour import Behaviour, Reply, ResourceSpec
from reference_server.capture import DOWNLINK, UPLINK, Capture, Datagram, Direction
from reference_server.hooks import CaptureHookError, self_test
from reference_server.pcap import write_pcap
from reference_server.server import ReferenceServer

__all__ = [
    "DOWNLINK",
    "UPLINK",
    "Behaviour",
    "Capture",
    "CaptureHookError",
    "Datagram",
    "Direction",
    "ReferenceServer",
    "Reply",
    "ResourceSpec",
    "self_test",
    "write_pcap",
]
