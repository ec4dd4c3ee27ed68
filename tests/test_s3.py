"""The store on an S3 bucket, end to end: a real twistd node, a real S3 API server (moto_server,
or the one ``IMAGEPIPE_TEST_S3_ENDPOINT`` names), boto3 to look at the bucket."""

import hashlib
import urllib.error
import urllib.request
import xmlrpc.client

import pytest

from support.decoding import opened
from support.net import wait_for
from support.samples import picture
from support.server import b64

pytestmark = pytest.mark.slow

SIZES = {"": [400, 300], "_m": [120, 120], "_s": [40, 40]}


def on_bucket(make_server, s3, bucket, endpoint=None, **settings):
    """A node whose store is ``bucket`` (through ``endpoint``, a proxy, if given)."""
    node = make_server()
    node.sections["images"]["backend"] = "s3"
    node.sections["s3"] = s3.settings(bucket, endpoint, **settings)
    return node


def fetch(url):
    """(status, body) of a GET, an error status included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def reading_a_bucket(make_server, s3, proxy, key, revalidate):
    """A node whose native mount reads sources from a new bucket (through ``proxy``), which
    holds a picture at ``key``; (node, bucket)."""
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key=key, Body=picture(800, 600))
    node = make_server()
    node.sections["http"] = {"native": {"source": "s3"}}
    node.sections["s3"] = s3.settings(bucket, proxy.endpoint, revalidate=revalidate)
    return node.start(), bucket


def test_a_store_on_a_bucket_writes_the_same_objects_as_on_a_tree(make_server, s3):
    bucket = s3.new_bucket()
    node = on_bucket(make_server, s3, bucket, cache_control="public, max-age=60").start()
    tree = make_server().start()
    source = b64(picture(800, 600))
    assert node.proxy().store_image(source, "cats/a.jpg", "jpg", SIZES) == "OK"
    assert tree.proxy().store_image(source, "cats/a.jpg", "jpg", SIZES) == "OK"
    objects = s3.objects(bucket)
    assert sorted(objects) == ["cats/a.jpg", "cats/a_m.jpg", "cats/a_s.jpg"]
    for key, data in objects.items():
        assert data == (tree.root / key).read_bytes(), key
    head = s3.client().head_object(Bucket=bucket, Key="cats/a_m.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == "public, max-age=60"
    assert head["Metadata"]["sha256"] == hashlib.sha256(objects["cats/a_m.jpg"]).hexdigest()
    assert tree.files() and not list(node.root.glob("cats*"))  # nothing on the node's disk


def test_image_info_comes_from_the_object_s_metadata(make_server, s3, s3_proxy):
    bucket = s3.new_bucket()
    node = on_bucket(make_server, s3, bucket, s3_proxy.endpoint).start()
    tree = make_server().start()
    source = b64(picture(640, 480))
    for each in (node, tree):
        each.proxy().store_image(source, "info/a.png", "png", {"": [200, 150]})
    s3_proxy.seen.clear()
    assert node.proxy().image_info("info/a.png") == tree.proxy().image_info("info/a.png")
    assert [method for method, _ in s3_proxy.seen] == ["HEAD"]  # no download


def test_move_copies_then_deletes_and_delete_removes(make_server, s3):
    bucket = s3.new_bucket()
    node = on_bucket(make_server, s3, bucket).start()
    proxy = node.proxy()
    proxy.store_image(b64(picture(300, 200)), "m/a.jpg", "jpg", {"": [100, 100], "_t": [20, 20]})
    stored = s3.objects(bucket)
    assert proxy.move_image(["m/a.jpg", "m/a_t.jpg"], ["n/b.jpg", "n/b_t.jpg"]) == "OK"
    moved = s3.objects(bucket)
    assert moved == {"n/b.jpg": stored["m/a.jpg"], "n/b_t.jpg": stored["m/a_t.jpg"]}
    assert s3.client().head_object(Bucket=bucket, Key="n/b.jpg")["ContentType"] == "image/jpeg"
    with pytest.raises(xmlrpc.client.Fault, match=r"src_path: no such image: 'm/a.jpg'"):
        proxy.move_image("m/a.jpg", "n/c.jpg")
    assert proxy.delete_image(["n/b.jpg", "n/b_t.jpg", "never/there.jpg"]) == "OK"
    assert s3.objects(bucket) == {}
    with pytest.raises(xmlrpc.client.Fault, match=r"path: no such image: 'n/b.jpg'"):
        proxy.image_info("n/b.jpg")


def test_a_failed_upload_leaves_nothing_of_its_call(make_server, s3, s3_proxy):
    bucket = s3.new_bucket()
    node = on_bucket(make_server, s3, bucket, s3_proxy.endpoint).start()
    proxy = node.proxy()
    s3_proxy.fail("PUT", "/f/a_m.jpg")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.store_image(b64(picture(500, 400)), "f/a.jpg", "jpg", SIZES)
    assert fault.value.faultCode == 1001  # OperationFailed
    assert f"cannot write 'f/a_m.jpg' to s3://{bucket}/f/a_m.jpg: InternalError" \
        in fault.value.faultString
    assert s3.objects(bucket) == {}
    s3_proxy.failing.clear()
    assert proxy.store_image(b64(picture(500, 400)), "f/a.jpg", "jpg", SIZES) == "OK"
    assert len(s3.objects(bucket)) == 3


def test_a_store_while_s3_is_gone_fails_cleanly_and_the_node_recovers(make_server, s3, s3_proxy):
    bucket = s3.new_bucket()
    node = on_bucket(make_server, s3, bucket, s3_proxy.endpoint).start()
    proxy = node.proxy()
    s3_proxy.down()
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.store_image(b64(picture(300, 300)), "gone/a.jpg", "jpg", SIZES)
    assert fault.value.faultCode == 1001 and f"s3://{bucket}/gone/a.jpg" in fault.value.faultString
    with urllib.request.urlopen(node.url + "health", timeout=30) as answer:
        assert answer.status == 200  # the node keeps serving
    s3_proxy.up()
    assert proxy.store_image(b64(picture(300, 300)), "gone/a.jpg", "jpg", SIZES) == "OK"
    assert sorted(s3.objects(bucket)) == ["gone/a.jpg", "gone/a_m.jpg", "gone/a_s.jpg"]


def test_a_missing_bucket_stops_start_up_naming_it(make_server, s3):
    node = on_bucket(make_server, s3, "no-such-bucket-here")
    node.start(wait=False)
    assert node.process.wait(60) == 1
    assert "[s3] bucket 'no-such-bucket-here': NoSuchBucket: " in node.log()


def test_wrong_credentials_stop_start_up_with_what_s3_said(make_server, tmp_path):
    from support.s3 import S3Server

    checking = S3Server(tmp_path / "auth", auth=True)  # or the server the environment names
    try:
        node = make_server()
        node.sections["images"]["backend"] = "s3"
        node.sections["s3"] = dict(checking.settings("images"), access_key_id="AKIANOSUCHKEY",
                                   secret_access_key="wrong")
        node.start(wait=False)
        assert node.process.wait(60) == 1
        log = node.log()
        assert "[s3] bucket 'images': " in log
        assert any(f"'images': {code}: " in log for code in
                   ("InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch"))
    finally:
        checking.stop()


def test_an_on_the_fly_mount_reads_its_sources_from_a_bucket(make_server, s3, s3_proxy):
    node, _ = reading_a_bucket(make_server, s3, s3_proxy, "src/cat.jpg", "1s")
    with urllib.request.urlopen(node.url + "r/w:200/src/cat.jpg", timeout=30) as answer:
        assert opened(answer.read()).size == (200, 150)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(node.url + "r/w:200/src/none.jpg", timeout=30)
    assert missing.value.code == 404
    s3_proxy.down()
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(node.url + "r/w:201/src/cat.jpg", timeout=30)
    assert failed.value.code in (502, 504)
    assert "s3://" in failed.value.read().decode()
    s3_proxy.up()


def test_a_cached_result_asks_the_bucket_again_only_after_revalidate(make_server, s3, s3_proxy):
    import time

    node, bucket = reading_a_bucket(make_server, s3, s3_proxy, "cat.jpg", "2s")
    client = s3.client()
    url = node.url + "r/w:100/cat.jpg"
    with urllib.request.urlopen(url, timeout=30) as answer:
        first = answer.read()
    s3_proxy.seen.clear()
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == first
    assert s3_proxy.seen == []  # a hit within revalidate: no request to the bucket
    client.put_object(Bucket=bucket, Key="cat.jpg", Body=picture(400, 600))  # replaced
    replaced = time.monotonic()
    wait_for(lambda: opened(fetch(url)[1]).size == (100, 150), 10,
             what="the new picture, rendered again")
    assert time.monotonic() - replaced <= 2 + 1.5  # within revalidate (and a render)
    client.delete_object(Bucket=bucket, Key="cat.jpg")
    wait_for(lambda: fetch(url)[0] == 404, 10, what="the deleted source's 404")


def test_replication_works_between_nodes_on_buckets(make_server, s3):
    from support.net import free_pair, wait_for

    here, there = s3.new_bucket(), s3.new_bucket()
    port = free_pair()
    a = on_bucket(make_server, s3, here)
    a.sections["replication"] = {"publish": f"tcp://127.0.0.1:{port}"}
    b = on_bucket(make_server, s3, there)
    b.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                 "subscribe": f"tcp://127.0.0.1:{port}"}
    a.start()
    b.start()
    proxy = a.proxy()
    assert proxy.store_image(b64(picture(600, 400)), "r/a.jpg", "jpg", SIZES) == "OK"
    wait_for(lambda: len(s3.objects(there)) == 3, 30, what="the store on the peer's bucket")
    assert s3.objects(there) == s3.objects(here)
    assert proxy.move_image("r/a.jpg", "r/b.jpg") == "OK"
    assert proxy.delete_image(["r/a_m.jpg", "r/a_s.jpg"]) == "OK"
    wait_for(lambda: sorted(s3.objects(there)) == ["r/b.jpg"], 30, what="move and delete")
    assert s3.objects(there) == s3.objects(here)
    assert b.proxy().image_info("r/b.jpg")["sha256"] == a.proxy().image_info("r/b.jpg")["sha256"]


def test_with_the_bucket_gone_a_cached_result_is_served_until_revalidate(make_server, s3,
                                                                         s3_proxy):
    import time

    node, _ = reading_a_bucket(make_server, s3, s3_proxy, "cat.jpg", "2s")
    url = node.url + "r/w:100/cat.jpg"
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200
    s3_proxy.down()
    gone = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200  # within revalidate: the bucket is not asked
    wait_for(lambda: fetch(url)[0] in (502, 504), 15, what="502 once revalidate passed")
    assert time.monotonic() - gone >= 1.5
    s3_proxy.up()
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200


def test_phizer_with_a_bucket_as_master_falls_back_to_the_origins(make_server, s3, origin):
    from support.origins import image

    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="in-bucket.jpg", Body=picture(800, 600))
    origin.routes["/only-on-origin.jpg"] = image(picture(600, 800))
    node = make_server()
    node.sections["http"] = {"native": {"enabled": "false"},
                             "phizer": {"enabled": "true", "source": "s3",
                                        "sizes": {"small": "100x100 max"}},
                             "origins": {"master": origin.url(), "allow": "127.0.0.1"}}
    node.sections["s3"] = s3.settings(bucket, origins_fallback="true")
    node.start()
    with urllib.request.urlopen(node.url + "phizer/small/in-bucket.jpg", timeout=30) as answer:
        assert opened(answer.read()).size == (100, 75)
    assert "/in-bucket.jpg" not in origin.paths()  # the master had it
    with urllib.request.urlopen(node.url + "phizer/small/only-on-origin.jpg",
                                timeout=30) as answer:
        assert opened(answer.read()).size == (75, 100)
    with pytest.raises(urllib.error.HTTPError) as nowhere:
        urllib.request.urlopen(node.url + "phizer/small/nowhere.jpg", timeout=30)
    assert nowhere.value.code == 404


def test_a_failed_upload_on_a_replicating_node_is_taken_back_from_the_journal(make_server, s3,
                                                                               s3_proxy):
    import json

    from support.net import free_pair, wait_for

    here, there = s3.new_bucket(), s3.new_bucket()
    port = free_pair()
    a = on_bucket(make_server, s3, here, s3_proxy.endpoint)
    a.sections["replication"] = {"publish": f"tcp://127.0.0.1:{port}"}
    b = on_bucket(make_server, s3, there)
    b.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                 "subscribe": f"tcp://127.0.0.1:{port}"}
    a.start()
    b.start()
    s3_proxy.fail("PUT", "/j/a_m.jpg")
    with pytest.raises(xmlrpc.client.Fault):
        a.proxy().store_image(b64(picture(500, 400)), "j/a.jpg", "jpg", SIZES)
    s3_proxy.failing.clear()
    assert a.proxy().store_image(b64(picture(300, 200)), "j/b.jpg", "jpg", SIZES) == "OK"
    wait_for(lambda: len(s3.objects(there)) == 3, 30, what="the peer's copy")
    assert sorted(s3.objects(there)) == ["j/b.jpg", "j/b_m.jpg", "j/b_s.jpg"]
    with urllib.request.urlopen(a.url + "status", timeout=30) as answer:
        assert json.loads(answer.read())["replication"]["published_sequence"] == 1


def test_writes_and_replicated_writes_to_one_path_on_buckets_do_not_deadlock(make_server, s3):
    import threading

    from support.net import free_pair, wait_for

    buckets = [s3.new_bucket(), s3.new_bucket()]
    ports = [free_pair(), free_pair()]
    nodes = []
    for index in (0, 1):
        node = on_bucket(make_server, s3, buckets[index])
        node.sections["replication"] = {"publish": f"tcp://127.0.0.1:{ports[index]}",
                                        "subscribe": f"tcp://127.0.0.1:{ports[1 - index]}"}
        nodes.append(node.start())
    errors = []

    def writer(node, seed):
        proxy = node.proxy()
        for round_ in range(6):
            try:
                proxy.store_image(b64(picture(100 + seed + round_, 80)), "same/a.jpg", "jpg",
                                  {"": [60, 60]})
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

    threads = [threading.Thread(target=writer, args=(node, 7 * i)) for i, node in
               enumerate(nodes) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads) and errors == []
    wait_for(lambda: s3.objects(buckets[0]) == s3.objects(buckets[1]), 30,
             what="both buckets to settle on one picture")


def test_the_manifest_pages_through_a_bucket(make_server, s3):
    bucket = s3.new_bucket()
    node = on_bucket(make_server, s3, bucket).start()
    proxy = node.proxy()
    for index in range(5):
        proxy.store_image(b64(picture(40, 40)), f"p/{index}.jpg", "jpg", {"": [20, 20]})
    s3.client().put_object(Bucket=bucket, Key="p/", Body=b"")  # a console's "folder"
    stored = s3.objects(bucket)
    paths, after = [], ""
    while True:
        page = proxy.image_manifest(after, 2)
        paths += [(path, sha256) for path, sha256, _ in page["entries"]]
        after = page["next"]
        if not after:
            break
    assert paths == [(f"p/{index}.jpg", hashlib.sha256(stored[f"p/{index}.jpg"]).hexdigest())
                     for index in range(5)]
