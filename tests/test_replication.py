"""Replication between real nodes: separate twistd processes on loopback ports."""

import concurrent.futures
import hashlib
import http.client
import json
import signal
import time
import xmlrpc.client

import pytest
import zmq

from support.decoding import opened
from support.net import free_pair, wait_for
from support.samples import photo, picture
from support.server import Server, b64
from imagepipe.replication import messages
from imagepipe.replication.messages import FileEntry, Message


class Cluster:
    """N nodes wired as a pair, ring or mesh."""

    def __init__(self, base, count, topology, **overrides):
        self.pub = [free_pair() for _ in range(count)]
        self.nodes = []
        for index in range(count):
            if topology == "ring":
                upstreams = [(index - 1) % count]
            else:  # mesh (a pair is a mesh of two)
                upstreams = [j for j in range(count) if j != index]
            node = Server(base / f"n{index}", **overrides)
            node.sections["replication"] = {
                "publish": f"tcp://127.0.0.1:{self.pub[index]}",
                "subscribe": ", ".join(f"tcp://127.0.0.1:{self.pub[j]}" for j in upstreams),
                **node.sections.get("replication", {}),
            }
            self.nodes.append(node)

    def start(self):
        for node in self.nodes:
            node.start()
        return self

    def stop(self):
        for node in self.nodes:
            node.stop(signal.SIGKILL)


def send_until(pub, batches, done, timeout=20):
    """Publish ``batches`` again and again until ``done()``: a SUB joins late."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the node never applied what was sent"
        for frames in batches:
            pub.send_multipart(frames)
        time.sleep(0.05)


def trimmed(node):
    """How many journal records the node's log says it trimmed."""
    return sum(int(line.split("trimmed ")[1].split()[0])
               for line in node.log().splitlines() if "journal records" in line
               and "trimmed " in line)


def tree_digest(node):
    """{path: sha256} of every visible file of a node; None while files come and go."""
    try:
        return {path: hashlib.sha256((node.root / path).read_bytes()).hexdigest()
                for path in node.files()}
    except FileNotFoundError:
        return None


def converged(cluster, expected=None):
    """True when every node holds the same files (and ``expected`` paths, if given)."""
    digests = [tree_digest(node) for node in cluster.nodes]
    if None in digests or any(d != digests[0] for d in digests):
        return False
    return expected is None or set(digests[0]) == set(expected)


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(count=2, topology="mesh", **overrides):
        group = Cluster(tmp_path, count, topology, **overrides)
        made.append(group)
        return group

    yield make
    for group in made:
        group.stop()


def test_store_move_and_delete_replicate_byte_for_byte(cluster):
    pair = cluster(2).start()
    a, b = pair.nodes
    proxy = a.proxy()
    proxy.store_image(b64(photo()), "r/k.jpg", "",
                      {"": [1024, 1024], "_m": [250, 250], "_s": [50, 50]}, 0,
                      {"": 0, "_m": 0, "_s": 1})
    wait_for(lambda: converged(pair, ["r/k.jpg", "r/k_m.jpg", "r/k_s.jpg"]),
             what="the store to replicate")
    proxy.move_image("r/k_m.jpg", "moved/k_m.jpg")
    proxy.delete_image("r/k_s.jpg")
    wait_for(lambda: converged(pair, ["r/k.jpg", "moved/k_m.jpg"]),
             what="the move and delete to replicate")
    b.proxy().store_image(b64(picture(64, 64)), "from_b.png")
    wait_for(lambda: converged(pair, ["r/k.jpg", "moved/k_m.jpg", "from_b.png"]),
             what="a write on the other node to come back")


def test_a_killed_subscriber_catches_up_200_writes(cluster):
    pair = cluster(2).start()
    a, b = pair.nodes
    b.stop(signal.SIGKILL)
    proxy = a.proxy()
    small = [b64(picture(40 + i, 30)) for i in range(20)]
    for i in range(200):
        if i % 10 == 7:
            proxy.move_image(f"bulk/{i - 1}.jpg", f"bulk/moved/{i - 1}.jpg")
        elif i % 10 == 9:
            proxy.delete_image(f"bulk/{i - 3}.jpg")
        else:
            proxy.store_image(small[i % 20], f"bulk/{i}.jpg", "", [32, 32])
    expected = set(a.files())
    b.start()
    wait_for(lambda: converged(pair, expected), timeout=60, what="the restarted node to catch up")
    wait_for(lambda: "caught up 200 messages from" in b.log(), what="the catch-up in the log")


def test_killing_the_publisher_mid_stream_loses_no_acknowledged_write(cluster):
    pair = cluster(2).start()
    a, b = pair.nodes
    acknowledged = []

    def write(index):
        try:
            a.proxy().store_image(b64(picture(50, 40 + index % 7)), f"k/{index}.jpg")
            acknowledged.append(f"k/{index}.jpg")
        except (OSError, xmlrpc.client.Error):
            pass

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(write, i) for i in range(60)]
        wait_for(lambda: len(acknowledged) >= 15, what="some acknowledged writes")
        a.process.send_signal(signal.SIGKILL)
        concurrent.futures.wait(futures)
    a.process.wait(30)
    a.start()
    wait_for(lambda: converged(pair) and set(acknowledged) <= set(b.files()), timeout=60,
             what="both nodes to hold every acknowledged write")


@pytest.mark.parametrize("topology,forward", [("ring", "true"), ("mesh", "true"),
                                              ("mesh", "false")])
def test_three_nodes_converge(cluster, topology, forward):
    group = cluster(3, topology, replication__forward=forward).start()
    for index, node in enumerate(group.nodes):
        node.proxy().store_image(b64(picture(30 + index, 30)), f"t/{index}.jpg")
    expected = {f"t/{i}.jpg" for i in range(3)}
    wait_for(lambda: converged(group, expected), timeout=30, what=f"the {topology} to converge")


def test_a_ring_with_a_stopped_node_holds_writes_until_it_returns(cluster):
    ring = cluster(3, "ring").start()
    a, b, c = ring.nodes  # b subscribes a, c subscribes b, a subscribes c
    b.stop(signal.SIGKILL)
    a.proxy().store_image(b64(picture(20, 20)), "ring/a.jpg")
    c.proxy().store_image(b64(picture(20, 20)), "ring/c.jpg")
    wait_for(lambda: "ring/c.jpg" in a.files(), what="c's write to reach a")
    assert "ring/a.jpg" not in c.files()  # only b could have carried it
    b.start()
    wait_for(lambda: converged(ring, ["ring/a.jpg", "ring/c.jpg"]), timeout=30,
             what="the ring to deliver once the node is back")


def test_concurrent_writes_to_one_path_settle_on_one_file(cluster):
    pair = cluster(2).start()
    a, b = pair.nodes
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for round_ in range(5):
            path = f"same/{round_}.png"
            list(pool.map(lambda n: n[0].proxy().store_image(b64(picture(10 + n[1], 10)), path),
                          [(a, round_), (b, round_ + 20)]))
    expected = {f"same/{i}.png" for i in range(5)}
    wait_for(lambda: converged(pair, expected), timeout=30, what="one winner per path")


def test_a_delete_during_a_partition_is_not_undone(cluster):
    pair = cluster(2).start()
    a, b = pair.nodes
    a.proxy().store_image(b64(picture(20, 20)), "part/x.jpg")
    wait_for(lambda: converged(pair, ["part/x.jpg"]), what="the first store")
    b.send(signal.SIGSTOP)
    try:
        a.proxy().delete_image("part/x.jpg")
    finally:
        b.send(signal.SIGCONT)
    wait_for(lambda: converged(pair, []), timeout=30, what="the delete to win everywhere")
    b.proxy().store_image(b64(picture(9, 9)), "part/later.jpg")
    wait_for(lambda: converged(pair, ["part/later.jpg"]), what="a later write to travel")


@pytest.fixture
def fed(tmp_path):
    """A node subscribed to a bare PUB socket the test publishes on."""
    fake = free_pair()
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{fake}")
    node = Server(tmp_path / "fed")
    node.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                    "subscribe": f"tcp://127.0.0.1:{fake}"}
    node.start()
    yield node, pub
    node.stop(signal.SIGKILL)
    pub.close(0)
    context.term()


def test_a_message_with_an_escaping_path_is_refused(fed):
    node, pub = fed
    origin = "ab" * 16
    data = picture(8, 8)
    evil = messages.encode(Message("store", origin, 1, 1 << 16,
                                   files=(FileEntry.of("ok.jpg", data),)))
    header = json.loads(evil[0])
    header["files"][0]["path"] = "../../escaped.jpg"
    good = messages.encode(Message("store", origin, 1, 1 << 16,
                                   files=(FileEntry.of("good.jpg", data),)))
    send_until(pub, [[json.dumps(header).encode(), data], good],
               lambda: "good.jpg" in node.files())
    assert node.files() == ["good.jpg"]
    assert not (node.base / "escaped.jpg").exists()
    assert not (node.base.parent / "escaped.jpg").exists()
    assert "'..' components are not allowed" in node.log()


def test_a_late_store_cannot_resurrect_a_deleted_file(fed):
    """A store older than a delete (by HLC) arrives after it: the tombstone wins."""
    node, pub = fed
    origin = "cd" * 16
    old = 1 << 16  # 1 ms after the epoch: older than anything the node does
    first = messages.encode(Message("store", origin, 1, old,
                                    files=(FileEntry.of("z/late.jpg", picture(8, 8)),)))
    send_until(pub, [first], lambda: "z/late.jpg" in node.files())
    node.proxy().delete_image("z/late.jpg")
    late = messages.encode(Message("store", origin, 2, old + 1,
                                   files=(FileEntry.of("z/late.jpg", picture(9, 9)),)))
    marker = messages.encode(Message("store", origin, 3, old + 2,
                                     files=(FileEntry.of("z/marker.jpg", picture(8, 8)),)))
    send_until(pub, [late, marker], lambda: "z/marker.jpg" in node.files())
    assert node.files() == ["z/marker.jpg"]


def test_curve_admits_known_peers_and_refuses_a_wrong_key(tmp_path):
    from imagepipe.cli import keygen

    keys, stranger_keys = tmp_path / "keys", tmp_path / "stranger"
    for name in ("a", "b"):
        keygen(str(keys), name)
    keygen(str(stranger_keys), "c")
    allowed = tmp_path / "allowed"  # a admits b only
    allowed.mkdir()
    (allowed / "b.key").write_bytes((keys / "b.key").read_bytes())
    port = free_pair()
    a = Server(tmp_path / "a")
    a.sections["replication"] = {"publish": f"tcp://127.0.0.1:{port}",
                                 "curve_secret_key": str(keys / "a.key_secret"),
                                 "curve_public_keys": str(allowed)}

    def follower(name, secret):
        node = Server(tmp_path / name)
        node.sections["replication"] = {
            "publish": f"tcp://127.0.0.1:{free_pair()}",
            "subscribe": f"tcp://127.0.0.1:{port}",
            "curve_secret_key": str(secret), "curve_public_keys": str(keys),
            "curve_subscribe_keys": str(keys / "a.key")}
        return node

    b = follower("b", keys / "b.key_secret")
    c = follower("c", stranger_keys / "c.key_secret")
    nodes = [a, b, c]
    try:
        for node in nodes:
            node.start()
        a.proxy().store_image(b64(picture(16, 16)), "secret/1.jpg")
        wait_for(lambda: b.files() == ["secret/1.jpg"], what="the admitted peer to replicate")
        a.proxy().store_image(b64(picture(16, 16)), "secret/2.jpg")
        wait_for(lambda: len(b.files()) == 2, what="a second write at the admitted peer")
        assert c.files() == []  # heard nothing, though it asked the whole time
    finally:
        for node in nodes:
            node.stop(signal.SIGKILL)


def test_a_node_refuses_to_start_when_curve_keys_are_unusable(tmp_path):
    bad = tmp_path / "bad.key_secret"
    bad.write_text("not a key\n")
    node = Server(tmp_path / "n")
    node.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                    "curve_secret_key": str(bad),
                                    "curve_public_keys": str(tmp_path)}
    node.start(wait=False)
    assert node.process.wait(60) != 0
    assert "CURVE cannot start" in node.log()


def test_a_new_node_does_a_full_sync_once_the_journal_is_trimmed(tmp_path):
    port = free_pair()
    a = Server(tmp_path / "a")
    a.sections["replication"] = {"publish": f"tcp://127.0.0.1:{port}", "retention": "1s"}
    b = Server(tmp_path / "b")
    b.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                 "subscribe": f"tcp://127.0.0.1:{port}"}
    try:
        a.start()
        proxy = a.proxy()
        for index in range(5):
            proxy.store_image(b64(picture(20 + index, 20)), f"full/{index}.jpg")
        proxy.delete_image("full/0.jpg")
        proxy.move_image("full/1.jpg", "full/moved.jpg")
        wait_for(lambda: trimmed(a) == 7, timeout=30, what="the journal to be trimmed")
        b.start()
        pair = type("Pair", (), {"nodes": [a, b]})
        expected = ["full/2.jpg", "full/3.jpg", "full/4.jpg", "full/moved.jpg"]
        wait_for(lambda: converged(pair, expected), timeout=30, what="the full sync")
        # The files land before the sync logs that it is done.
        wait_for(lambda: "full sync from" in b.log(), timeout=10, what="the full sync log")
        proxy.store_image(b64(picture(9, 9)), "full/after.jpg")
        wait_for(lambda: converged(pair, expected + ["full/after.jpg"]), timeout=30,
                 what="live replication after the full sync")
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def test_a_replicated_write_invalidates_the_peers_cached_results(cluster):
    pair = cluster(2).start()
    a, b = pair.nodes
    a.proxy().store_image(b64(picture(200, 100)), "otf/p.jpg")
    wait_for(lambda: converged(pair, ["otf/p.jpg"]), what="the store to replicate")
    cached = b.root / ".imagepipe" / "cache" / "files" / "r" / "w:50" / "otf" / "p.jpg.jpg"
    assert opened(http_get(b, "/r/w:50/otf/p.jpg")).size == (50, 25)
    assert cached.exists()
    a.proxy().store_image(b64(picture(100, 200)), "otf/p.jpg")
    wait_for(lambda: not cached.exists(), what="the peer's cached result to go")
    assert opened(http_get(b, "/r/w:50/otf/p.jpg")).size == (50, 100)
    a.proxy().delete_image("otf/p.jpg")
    wait_for(lambda: not cached.exists(), what="the peer's cached result to go again")
    wait_for(lambda: not (b.root / "otf" / "p.jpg").exists(), what="the delete to replicate")


def http_get(node, path):
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    return body
