"""A software Quectel module: AT commands on a pty, CoAP over UDP.

``python -m emulator --model BC28 --link /tmp/ttyBC28`` serves the CoAP AT
commands of the BC35-G/BC28 note ("bc28" dialect) or of the BG95/BG77/BG600L
note ("bg95" dialect) so the suite can run without hardware.
"""
