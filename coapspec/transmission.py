"""RFC 7252 §4.8 transmission parameters and the §4.2 retransmission schedule."""
from __future__ import annotations

import random
from dataclasses import dataclass

#: §4.8.2 MAX_LATENCY: the longest a datagram is expected to take, seconds.
MAX_LATENCY = 100.0
#: §4.6: without Path MTU knowledge a message (header to payload) should fit 1152 bytes.
MAX_MESSAGE_SIZE = 1152


@dataclass(frozen=True)
class TransmissionParameters:
    ack_timeout: float = 2.0          # seconds
    ack_random_factor: float = 1.5
    max_retransmit: int = 4

    def initial_timeout(self, rng: random.Random | None = None) -> float:
        """§4.2: random in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR]."""
        r = (rng or random).random()
        return self.ack_timeout * (1 + r * (self.ack_random_factor - 1))

    def window(self, k: int) -> tuple[float, float]:
        """Bounds of the gap before retransmission k+1 (k = 0 for the first timeout)."""
        return (self.ack_timeout * 2 ** k, self.ack_timeout * self.ack_random_factor * 2 ** k)

    @property
    def max_transmit_span(self) -> float:
        """§4.8.2 MAX_TRANSMIT_SPAN: first to last transmission of a CON."""
        return self.ack_timeout * (2 ** self.max_retransmit - 1) * self.ack_random_factor

    @property
    def max_transmit_wait(self) -> float:
        """§4.8.2 MAX_TRANSMIT_WAIT."""
        return self.ack_timeout * (2 ** (self.max_retransmit + 1) - 1) * self.ack_random_factor

    @property
    def exchange_lifetime(self) -> float:
        """§4.8.2 EXCHANGE_LIFETIME (MAX_LATENCY 100 s, PROCESSING_DELAY = ACK_TIMEOUT)."""
        return self.max_transmit_span + 2 * MAX_LATENCY + self.ack_timeout

    @property
    def non_lifetime(self) -> float:
        """§4.8.2 NON_LIFETIME: how long a NON's Message ID is remembered for deduplication."""
        return self.max_transmit_span + MAX_LATENCY


RFC7252 = TransmissionParameters()
