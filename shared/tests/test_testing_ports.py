"""Ports the test harness gives the services it starts (``careloop_shared.testing.free_port``)."""

from __future__ import annotations

import socket
from pathlib import Path

from careloop_shared.testing import LISTEN_PORTS, free_port


def test_a_services_port_is_free_and_below_the_ephemeral_range():
    """A restarted service listens on its port again; an ephemeral port may meanwhile be any process's
    outgoing connection (a chaos run's followup could not bind its port again for four minutes)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    for port in ports:
        assert port in LISTEN_PORTS and port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free
    assert len(ports) > 1  # chosen at random, so two harnesses seldom pick the same


def test_services_asking_for_ports_before_any_binds_get_different_ones():
    """A platform's services each ask for a port before the first of them listens (two of a browser test
    platform's services once drew the same port, and one answered for the other): never the same twice."""
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
