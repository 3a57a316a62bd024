"""A real DNS server for the tests: a UDP responder on 127.0.0.1 and a free port, answering TXT
queries from a dict, built with dnspython's message API.

    def test_something(dns_server, settings):
        dns_server.txt["s1._domainkey.example.com"] = ["v=DKIM1; k=rsa; p=..."]
        settings.DKIM_DNS_NAMESERVERS, settings.DKIM_DNS_PORT = ["127.0.0.1"], dns_server.port

A name not in `txt` answers NXDOMAIN; one mapped to [] answers with no TXT record. `failing = True`
answers SERVFAIL to everything, `silent = True` answers nothing (the client's timeout).
"""

import socket
import threading
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest


@dataclass
class DnsServer:
    port: int = 0
    txt: dict = field(default_factory=dict)  # name (no trailing dot) -> list of TXT values
    failing: bool = False
    silent: bool = False
    queries: list = field(default_factory=list)  # the names asked, in order

    def answer(self, wire):
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append(name)
        if self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.txt:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and self.txt[name]:
            # Each value as the 255-byte strings one TXT record is made of.
            texts = [" ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255)) for value in self.txt[name]]
            response.answer.append(
                dns.rrset.from_text(question.name, 300, dns.rdataclass.IN, dns.rdatatype.TXT, *texts)
            )
        return response.to_wire()


@pytest.fixture
def dns_server():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))  # a free port, picked by the system
    sock.settimeout(0.2)
    server = DnsServer(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            if not server.silent:
                sock.sendto(server.answer(wire), peer)

    thread = threading.Thread(target=serve, name="test-dns", daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(timeout=5)
    sock.close()
