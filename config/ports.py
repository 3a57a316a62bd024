"""Whether the ports `make run` listens on are free, checked before anything starts.

The development processes listen on 127.0.0.1: the web server on WEB_PORT and the SMTP sink on
SINK_PORT (the embedded PostgreSQL uses a unix socket, no TCP port). A port is free when a socket
can bind it as the servers do, with SO_REUSEADDR: a port left in TIME_WAIT by the last run is free,
one another program listens on (Mailpit and MailHog take 1025) is not.
"""

import errno
import socket

HOST = "127.0.0.1"
# How far past a taken port to look for a free one to suggest.
SUGGESTION_RANGE = 100


class PortProblem(Exception):
    """One line for the person who typed `make run`: which variable to set, and to what."""


def bind_error(port, host=HOST):
    """None if a server could listen on the port now, else the errno binding it gave."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno
        return None


def is_free(port, host=HOST):
    return bind_error(port, host) is None


def free_port_after(port, *, avoid=(), host=HOST):
    """The first free port above `port` (not one of `avoid`), or None within SUGGESTION_RANGE."""
    for candidate in range(port + 1, min(port + SUGGESTION_RANGE, 65535) + 1):
        if candidate not in avoid and is_free(candidate, host):
            return candidate
    return None


def check(ports, *, command="make run", host=HOST):
    """Raise PortProblem for the first taken port of `ports`, a {variable: port} dict in order."""
    seen = {}
    for variable, port in ports.items():
        if port in seen:
            raise PortProblem(f"{seen[port]} and {variable} are both {port}: set one of them to another port.")
        seen[port] = variable
    for variable, port in ports.items():
        error = bind_error(port, host)
        if error is None:
            continue
        if error == errno.EACCES:
            problem = f"port {port} ({variable}) needs root"
        elif error == errno.EADDRINUSE:
            problem = f"port {port} ({variable}) is taken by another program"
        else:
            problem = f"port {port} ({variable}) cannot be used ({errno.errorcode.get(error, error)})"
        suggestion = free_port_after(max(port, 1024), avoid=set(ports.values()), host=host)
        if suggestion is None:
            raise PortProblem(f"{problem}; set {variable} to a free port.")
        raise PortProblem(f"{problem}; run {variable}={suggestion} {command}")
