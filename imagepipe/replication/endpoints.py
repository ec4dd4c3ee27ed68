"""Endpoint arithmetic shared by the config and the links."""


def sync_endpoint(endpoint):
    """The catch-up endpoint that goes with a publish endpoint.

    TCP port + 1 (``tcp://10.0.0.2:8086`` -> ``tcp://10.0.0.2:8087``), or the
    IPC path with ``.sync`` appended.
    """
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint[len("tcp://"):].rpartition(":")
        return f"tcp://{host}:{int(port) + 1}"
    return endpoint + ".sync"
