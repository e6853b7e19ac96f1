"""BG95 UFS (AT+QFUPL/QFLST/QFDEL), AT+QSSLCFG, network states and the DTLS pieces."""
from __future__ import annotations

import asyncio

import pytest

from emulator.dtls import DtlsClient, DtlsError, parse_psk_file
from emulator.ufs import checksum
from reference_server import Behaviour, ReferenceServer


def test_checksum_is_xor_of_big_endian_words():
    assert checksum(b"") == 0
    assert checksum(b"\x12\x34\x56\x78") == 0x1234 ^ 0x5678
    assert checksum(b"\x12\x34\x56") == 0x1234 ^ 0x5600            # odd tail padded with 0x00
    assert checksum(b"864508030012428&313233343446473839") == 0x322E  # the §5.2 file


def test_parse_psk_file():
    assert parse_psk_file(b"864508030012428&313233343446473839") == ("864508030012428", b"12344FG89")
    for bad in (b"no-ampersand", b"id&zz", b"&00", b"id&"):
        with pytest.raises(ValueError):
            parse_psk_file(bad)


def test_ufs_commands(emulator):
    _, ch = emulator("BG95-M1")
    assert ch.command("AT+CMEE=1").ok
    assert ch.command('AT+QFDEL="*"').ok
    reply = ch.command('AT+QFUPL="UFS:a.bin",4', data=b"\x1a\x1b\x00\xff", end=None, prompt="CONNECT")
    assert reply.ok and reply.info == [f"+QFUPL: 4,{checksum(bytes([0x1a, 0x1b, 0, 0xff])):x}"]
    again = ch.command('AT+QFUPL="a.bin",1', data=b"x", end=None, prompt="CONNECT")
    assert again.final == "+CME ERROR: 407"                          # file exists
    assert ch.command("AT+QFLST").info == ['+QFLST: "UFS:a.bin",4']
    assert ch.command('AT+QFDEL="nope"').final == "+CME ERROR: 405"
    assert ch.command('AT+QFUPL="RAM:x",1').final == "+CME ERROR: 406"
    assert ch.command('AT+QFDEL="a.bin"').ok
    assert ch.command("AT+QFLST").info == []


def test_qsslcfg_and_reboot_restores_defaults(emulator):
    _, ch = emulator("BG77")
    assert ch.command('AT+QSSLCFG="dtls",2').info == ['+QSSLCFG: "dtls",2,0']
    assert ch.command('AT+QSSLCFG="dtlsversion",2').info == ['+QSSLCFG: "dtlsversion",2,1']
    assert ch.command('AT+QSSLCFG="dtls",2,1').ok
    assert ch.command('AT+QSSLCFG="dtlsversion",2,3').final == "ERROR"
    assert ch.command('AT+QSSLCFG="dtls",6,1').final == "ERROR"
    assert ch.command('AT+QSSLCFG="dtls",2').info == ['+QSSLCFG: "dtls",2,1']
    assert ch.command('AT+QCOAPOPEN=0,"127.0.0.1",5683').ok
    ch.wait_urc(r"\+QCOAPOPEN: 0,0", timeout=5)
    assert ch.command("AT+CFUN=1,1").ok
    ch.wait_urc("APP RDY", timeout=10)
    assert ch.command('AT+QSSLCFG="dtls",2').info == ['+QSSLCFG: "dtls",2,0']
    assert ch.command("AT+QCOAPOPEN?").info == []                    # reboot closed the session


def test_open_while_attaching_gives_minus_6(emulator):
    """§4 -6 "Data call activating": CFUN=1 after CFUN=0 re-attaches in the background
    (2 module seconds, 1 s real at time scale 0.5); an open in that window gets -6."""
    _, ch = emulator("BG95-M2", time_scale=0.5)
    assert ch.command("AT+CFUN=0").ok
    assert ch.command("AT+CFUN=1").ok
    assert ch.command('AT+QCOAPOPEN=0,"127.0.0.1",5683').ok
    ch.wait_urc(r"\+QCOAPOPEN: 0,-6", timeout=5)
    assert ch.command("AT+CGATT=1", timeout=10).ok                  # waits for the attach
    assert ch.command('AT+QCOAPOPEN=0,"127.0.0.1",5683').ok
    ch.wait_urc(r"\+QCOAPOPEN: 0,0", timeout=5)


def test_dtls_client_against_reference_server_front():
    """Emulator DTLS client <-> reference-server DTLS front: plaintext captured, records kept."""
    server = ReferenceServer(("127.0.0.1", 0))
    server.start()
    try:
        async def run() -> bytes:
            got: asyncio.Queue[bytes] = asyncio.Queue()

            class App(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    got.put_nowait(data)

            client = await DtlsClient.connect("127.0.0.1", ("127.0.0.1", server.dtls_port),
                                              "864508030012428", b"12344FG89", 5)
            client.app = App()
            client.sendto(bytes.fromhex("4101004d01b568656c6c6f"))     # CON GET /hello, mid 77
            reply = await asyncio.wait_for(got.get(), 5)
            client.close()
            with pytest.raises(DtlsError):
                await DtlsClient.connect("127.0.0.1", ("127.0.0.1", server.dtls_port),
                                         "864508030012428", b"wrong", 1)
            return reply

        reply = asyncio.run(run())
        assert reply[:4] == bytes.fromhex("6145004d")                      # ACK 2.05 mid 77
        plain = [d.raw.hex() for d in server.capture.datagrams(0)]
        assert plain[0] == "4101004d01b568656c6c6f"                        # decrypted uplink captured
        records = server.dtls.records
        assert records and all(b"hello" not in r.data for r in records)   # encrypted on the wire
        assert records[0].data[0] == 22                                    # handshake content type
    finally:
        server.stop()


def test_server_ending_the_dtls_session_disconnects_the_client(emulator):
    """The reference server stops: its close_notify turns the module's session to <status> 0
    and the CON still waiting for an ACK ends in +QCOAPACK <result> -4 (bg95.py _disconnected)."""
    server = ReferenceServer(("127.0.0.1", 0))
    server.start()
    try:
        server.configure(Behaviour.from_dict({"resources": {"/q": {"silent": True}}}))
        _, ch = emulator("BG95-M1")
        psk = b"864508030012428&313233343446473839"
        assert ch.command('AT+QFDEL="*"').ok
        assert ch.command(f'AT+QFUPL="UFS:0_server.psk",{len(psk)}', data=psk, end=None,
                          prompt="CONNECT").ok
        assert ch.command('AT+QCOAPCFG="dtls",0,1,0').ok
        assert ch.command('AT+QCOAPCFG="trans",0,60,4').ok           # no retransmission in the test
        assert ch.command(f'AT+QCOAPOPEN=0,"127.0.0.1",{server.dtls_port}').ok
        ch.wait_urc(r"\+QCOAPOPEN: 0,0", timeout=10)
        assert ch.command("AT+QCOAPHEADER=0,4300,0,0").ok
        assert ch.command('AT+QCOAPOPTION=0,0,0,11,"q"').ok
        mark = server.capture.mark()
        assert ch.command("AT+QCOAPSEND=0,0,1,1", data=b"").ok
        assert server.capture.wait_for(mark, timeout=5) is not None  # the CON reached the server
    finally:
        server.stop()                                                 # close_notify to the module
    ch.wait_urc(r"\+QCOAPACK: 0,0,4300,-4", timeout=5)
    assert ch.command("AT+QCOAPOPEN?").info == [f'+QCOAPOPEN: 0,"127.0.0.1",{server.dtls_port},0']
    assert ch.command("AT+QCOAPSEND=0,1,1,0").final == "ERROR"
    assert ch.command("AT+QCOAPCLOSE=0").ok
    ch.wait_urc(r"\+QCOAPCLOSE: 0,0", timeout=5)
