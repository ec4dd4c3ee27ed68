"""The one home of the test helpers: free ports, waiting for events, scripted origins,
replication links on a memory reactor.

``conftest.py`` holds the fixtures and the ``Server`` that runs a real
twistd; the helpers they and the tests share live here.
"""
