# SPDX-License-Identifier: LGPL-2.1-or-later
"""A minimal DICOM upper-layer client on a raw socket (PS3.8 PDUs, PS3.7 C-STORE), for
sending what a well-behaved client never sends: forged PDU lengths, half a dataset, silence."""
import socket
import struct

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


def uid(u):
    b = u.encode() if isinstance(u, str) else u
    return b + b"\0" if len(b) % 2 else b


def item(kind, body):
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(called="GSTCXR", calling="SENDER", sop_class=SC_CLASS, xfer=EXPLICIT_LE, max_pdu=16384):
    pc = struct.pack(">BBBB", 1, 0, 0, 0) + item(0x30, sop_class.encode()) + item(0x40, xfer.encode())
    user = item(0x51, struct.pack(">I", max_pdu)) + item(0x52, b"1.2.826.0.1.3680043.2.1143.1")
    body = (struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32) +
            item(0x10, APP_CONTEXT) + item(0x20, pc) + item(0x50, user))
    return struct.pack(">BBI", 1, 0, len(body)) + body


def pdata(context_id, control, payload):
    """One P-DATA-TF PDU holding one PDV (control: bit 0 command, bit 1 last fragment)."""
    pdv = struct.pack(">IBB", len(payload) + 2, context_id, control) + payload
    return struct.pack(">BBI", 4, 0, len(pdv)) + pdv


def implicit_element(group, element, value):
    return struct.pack("<HHI", group, element, len(value)) + value


def c_store_rq(sop_class, sop_instance, message_id=1):
    body = (implicit_element(0, 0x0002, uid(sop_class)) + implicit_element(0, 0x0100, struct.pack("<H", 1)) +
            implicit_element(0, 0x0110, struct.pack("<H", message_id)) +
            implicit_element(0, 0x0700, struct.pack("<H", 0)) + implicit_element(0, 0x0800, struct.pack("<H", 0)) +
            implicit_element(0, 0x1000, uid(sop_instance)))
    return implicit_element(0, 0, struct.pack("<I", len(body))) + body


def explicit_element(group, element, vr, value):
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return struct.pack("<HH", group, element) + vr.encode() + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, element) + vr.encode() + struct.pack("<H", len(value)) + value


def dataset(sop_instance, patient_name="Doe^Jane", patient_id="P1", extra=b""):
    """A small Secondary Capture dataset (explicit VR little endian, no meta header): 4x4 grey."""
    def s(t):
        b = t.encode()
        return b + b" " if len(b) % 2 else b
    return (explicit_element(0x0008, 0x0016, "UI", uid(SC_CLASS)) +
            explicit_element(0x0008, 0x0018, "UI", uid(sop_instance)) +
            explicit_element(0x0008, 0x0060, "CS", s("OT")) + extra +
            explicit_element(0x0010, 0x0010, "PN", s(patient_name)) +
            explicit_element(0x0010, 0x0020, "LO", s(patient_id)) +
            explicit_element(0x0020, 0x000D, "UI", uid(sop_instance + ".1")) +
            explicit_element(0x0020, 0x000E, "UI", uid(sop_instance + ".2")) +
            explicit_element(0x0028, 0x0002, "US", struct.pack("<H", 1)) +
            explicit_element(0x0028, 0x0004, "CS", s("MONOCHROME2")) +
            explicit_element(0x0028, 0x0010, "US", struct.pack("<H", 4)) +
            explicit_element(0x0028, 0x0011, "US", struct.pack("<H", 4)) +
            explicit_element(0x0028, 0x0100, "US", struct.pack("<H", 8)) +
            explicit_element(0x0028, 0x0101, "US", struct.pack("<H", 8)) +
            explicit_element(0x0028, 0x0102, "US", struct.pack("<H", 7)) +
            explicit_element(0x0028, 0x0103, "US", struct.pack("<H", 0)) +
            explicit_element(0x7FE0, 0x0010, "OB", bytes(range(0, 256, 16))))


def nested_sequences(depth):
    """(0008,1115) sequences nested `depth` deep, each with one item, undefined lengths."""
    open_ = struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0" + b"\xff\xff\xff\xff" + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return open_ * depth + close * depth


class Peer:
    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data):
        self.sock.sendall(data)

    def read_pdu(self):
        """(type, body) of the next PDU, or None when the peer closed the connection."""
        head = self._read(6)
        if head is None:
            return None
        kind, _, length = struct.unpack(">BBI", head)
        body = self._read(length)
        return None if body is None else (kind, body)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def associate(self, **kw):
        """Sends an A-ASSOCIATE-RQ; returns the answer's PDU type (2 accept, 3 reject) or None."""
        self.send(associate_rq(**kw))
        pdu = self.read_pdu()
        return None if pdu is None else pdu[0]

    def store(self, sop_instance, data, max_fragment=8000):
        """C-STORE of `data` on presentation context 1; returns the response status or None."""
        self.send(pdata(1, 0x03, c_store_rq(SC_CLASS, sop_instance)))
        for off in range(0, len(data), max_fragment):
            last = off + max_fragment >= len(data)
            self.send(pdata(1, 0x02 if last else 0x00, data[off:off + max_fragment]))
        while True:
            pdu = self.read_pdu()
            if pdu is None:
                return None
            kind, body = pdu
            if kind != 4:
                return None
            pos = 0
            while pos < len(body):
                length, _, control = struct.unpack(">IBB", body[pos:pos + 6])
                value = body[pos + 6:pos + 4 + length]
                pos += 4 + length
                if control & 1:
                    p = 0
                    while p + 8 <= len(value):
                        g, e, n = struct.unpack("<HHI", value[p:p + 8])
                        if (g, e) == (0, 0x0900):
                            return struct.unpack("<H", value[p + 8:p + 10])[0]
                        p += 8 + n

    def release(self):
        self.send(struct.pack(">BBIxxxx", 5, 0, 4))
        self.read_pdu()

    def abort(self):
        self.send(struct.pack(">BBIxxBB", 7, 0, 4, 0, 0))

    def closed_within(self, seconds):
        """True when the peer closes the connection within `seconds` (reading whatever comes)."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(4096):
                pass
            return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()
