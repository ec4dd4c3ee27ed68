"""The one home of the test helpers; ``conftest.py`` holds only the fixtures made of them.

``net``: free ports, waiting for an event.  ``server``: a real twistd imagepipe
(``Server``) and its config text.  ``samples``: the pictures the tests store.
``decoding``: Pillow, to read what came back.  ``magick``: ImageMagick behind
the policy, once.  ``origins``: scripted HTTP origins.  ``replication``: replication links on a
memory reactor.  ``reactor``: a memory reactor with taken ports.  ``tls``: a CA
and a server certificate made for a test.  ``frames``: malformed replication
frames.  ``s3``: a real S3 API server and a proxy that fails on purpose.  ``nginx``: the shipped
site file in a main config of its own.  ``net`` and ``nginx`` use only the
standard library: the benchmarks (``bench/common.py``) import them too.
"""
