"""The capture's memory is bounded: the harness configures once per vector and reads only
since its mark, so ``configure()`` frees what came before the previous vector's mark
(seqs never restart, marks stay valid); without configure a limit caps the store.

Before: 32 -> 79 MB of RSS after 40k datagrams, every datagram kept for the process's life.
"""
from __future__ import annotations

import socket

from coapspec import MessageType, Packet, code_from_dotted, decode, encode, option_spec
from reference_server import Behaviour, Capture, ReferenceServer
from reference_server.dtls import Record, RecordLog

SERVER, PEER = ("127.0.0.1", 5683), ("127.0.0.1", 40000)
RAW = encode(Packet(MessageType.CON, code_from_dotted("GET"), 1, b"\x01",
                    ((option_spec("Uri-Path").number, b"hello"),)))


def test_configure_frees_the_datagrams_of_earlier_vectors():
    server = ReferenceServer()          # configure() and the capture work before start()
    marks = []
    for _ in range(200):                # 200 vectors of 100 datagrams
        server.configure(Behaviour.default())
        marks.append(server.capture.mark())
        for _ in range(100):
            server.capture.record("uplink", SERVER, PEER, RAW)
        assert [d.seq for d in server.capture.datagrams(marks[-1])] == \
            list(range(marks[-1], marks[-1] + 100))
    assert server.capture.mark() == 200 * 100                  # seqs count on
    assert len(server.capture) <= 2 * 100                      # this vector and the one before
    assert len(server.capture.datagrams(marks[-2])) == 200     # the previous one is still readable
    assert server.capture.wait_for(marks[0], 0) is None        # long gone


def test_the_previous_vector_stays_readable_until_the_next_configure():
    """The harness reports a vector (timeline, pcap) after it ran, before configuring the next."""
    server = ReferenceServer()
    server.configure(Behaviour.default())
    first = server.capture.mark()
    server.capture.record("uplink", SERVER, PEER, RAW)
    server.configure(Behaviour.default())
    assert len(server.capture.datagrams(first)) == 1
    second = server.capture.mark()
    server.configure(Behaviour.default())
    assert server.capture.datagrams(first) == server.capture.datagrams(second) == []


def test_without_marks_configure_keeps_everything():
    server = ReferenceServer()
    for _ in range(3):
        server.configure(Behaviour.default())
        server.capture.record("uplink", SERVER, PEER, RAW)
    assert len(server.capture) == 3


def test_a_limit_caps_the_store_and_counts_the_overflow():
    capture = Capture(limit=64)
    for _ in range(1000):
        capture.record("downlink", SERVER, PEER, RAW)
    held = capture.datagrams()
    assert len(held) <= 64 and capture.overflow == 1000 - len(held)
    assert [d.seq for d in held] == list(range(1000 - len(held), 1000))
    assert capture.mark() == 1000 and capture.wait_for(0, 0) is None


def test_configure_frees_dtls_records_of_earlier_vectors_keeping_indices():
    """fixtures/network.py marks ``len(dtls.records)`` and slices ``records[start:]``."""
    with ReferenceServer() as server:
        records = server.dtls.records
        starts = []
        for vector in range(50):
            server.configure(Behaviour.default())
            starts.append(len(records))
            for _ in range(10):
                records.append(Record(0.0, PEER, SERVER, bytes([vector]), True))
            assert [r.data for r in records[starts[-1]:]] == [bytes([vector])] * 10
        assert len(records) == 500 and records.held <= 20
        assert len(records[starts[-2]:]) == 20


def test_record_log_indexing():
    log = RecordLog()
    for i in range(10):
        log.append(Record(float(i), PEER, SERVER, bytes([i]), True))
    log.forget_before(4)
    assert (len(log), log.held) == (10, 6)
    assert log[4].data == b"\x04" and log[-1].data == b"\x09"
    assert [r.data[0] for r in log[2:6]] == [4, 5] and [r.data[0] for r in log[8:]] == [8, 9]
    assert [r.data[0] for r in log] == [4, 5, 6, 7, 8, 9]
    for gone in (0, 3, 10):
        try:
            log[gone]
        except IndexError:
            continue
        raise AssertionError(f"record {gone} should not be held")


def test_a_running_server_stays_bounded_over_many_vectors(udp_peer: socket.socket):
    with ReferenceServer() as server:
        for vector in range(30):
            server.configure(Behaviour.default())
            mark = server.capture.mark()
            for i in range(10):
                mid = vector * 10 + i
                udp_peer.sendto(encode(Packet(MessageType.CON, code_from_dotted("GET"), mid, b"",
                                              ((option_spec("Uri-Path").number, b"hello"),))),
                                server.address)
                assert decode(udp_peer.recv(2048)).payload == b"hello world"
            assert server.capture.wait_for(mark + 19, 5) is not None
        assert len(server.capture) <= 40 and server.capture.mark() == 600
