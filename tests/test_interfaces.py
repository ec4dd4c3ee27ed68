"""Each backend provides its interface, checked with ``verifyObject``."""

from zope.interface.verify import verifyObject

from imagepipe.imaging.interfaces import IEngine, ITransformer
from imagepipe.imaging.processes import ProcessEngine
from imagepipe.tree import Tree
from imagepipe.web.origins.client import HttpOrigins
from imagepipe.web.origins.settings import OriginSettings
from imagepipe.storage import IStorage
from imagepipe.web.sources import IFetchSource, IReadSource, OriginSource, StoredSource


def test_both_engines_are_engines(engine):
    assert verifyObject(IEngine, engine)


def test_render_processes_offer_the_transformer_interface(engine):
    assert verifyObject(ITransformer, ProcessEngine(engine, processes=None))
    assert not IEngine.providedBy(ProcessEngine(engine, processes=None))


def test_the_tree_is_read_and_origins_are_fetched(tmp_path):
    from twisted.internet import reactor

    assert verifyObject(IReadSource, StoredSource(Tree(str(tmp_path), 0o022)))
    origins = HttpOrigins(reactor, OriginSettings(master="http://127.0.0.1:9/"))
    assert verifyObject(IFetchSource, OriginSource(origins))


def test_the_tree_and_a_bucket_are_storages(tmp_path):
    from imagepipe.bucket import Bucket

    assert verifyObject(IStorage, Tree(str(tmp_path), 0o022))
    assert verifyObject(IStorage, Bucket(client=None, name="images"))
