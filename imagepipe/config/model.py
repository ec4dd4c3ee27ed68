"""The typed configuration: one frozen dataclass per section, ``Config`` for the whole."""

import ipaddress
from dataclasses import dataclass, field

from imagepipe.imaging import ImageLimits
from imagepipe.paths import PathRules


@dataclass(frozen=True)
class ClientLimits:
    """How much of the node connections and clients may hold ([network] settings)."""

    head_timeout: float = 30.0
    body_timeout: float = 30.0
    body_min_rate: int = 16 << 10  # bytes per second a body must average past body_timeout
    max_connections: int = 1000
    max_client_connections: int = 64
    max_body_bytes: int = 256 << 20  # request bodies in flight, all connections
    exempt: tuple = ()  # ip_network: addresses (a local proxy) held only to the totals
    header: str = "x-forwarded-for"  # what a trusted proxy names the client in

    def exempts(self, host):
        """True when ``host`` (an address string) is held to the totals only."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:  # a unix socket: no client address
            return True
        return any(address in network for network in self.exempt)

    def client(self, host, real_ip=None, forwarded_for=None):
        """The client address a request from ``host`` counts against.

        From a trusted proxy it is what the proxy says in the one header
        ``header`` names: the rightmost ``X-Forwarded-For`` entry that is
        not itself a trusted proxy (each proxy appends the address it saw,
        so the entries before are the client's own claims), or its
        ``X-Real-IP``; else the proxy.  From anyone else the headers are
        ignored.  ``None`` for a unix socket with no header to go by.
        """
        if host is not None and not self.exempts(host):
            return host
        if self.header == "x-real-ip":
            candidates = [real_ip or ""]
        else:
            candidates = reversed((forwarded_for or "").split(","))
        for entry in candidates:
            address = _address(entry)
            if address is not None and not self.exempts(str(address)):
                return str(address)
        return host


def _address(text):
    """The IP address ``text`` holds, or None."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class NetworkSettings:
    """The ``[network]`` section."""

    interface: str
    port: int
    listen: tuple  # endpoint descriptions (imagepipe.listening); interface and port if unset
    auth: str
    auth_file: str
    max_request_bytes: int
    serve_images: bool
    shutdown_timeout: float
    access_log: str = "-"
    clients: ClientLimits = ClientLimits()
    credentials: tuple = field(default=(), repr=False)  # auth_file's entries, as bytes
    node_name: str = ""
    log_format: str = "text"  # or "json" (imagepipe.logs)


@dataclass(frozen=True)
class ReplicationSettings:
    """The ``[replication]`` section, with derived endpoints and paths resolved."""

    publish: tuple
    subscribe: tuple
    sync: tuple
    state_path: str
    retention: float
    high_water_mark: int
    max_message_bytes: int
    curve_secret_key: str
    curve_public_keys: str
    curve_subscribe_keys: tuple
    forward: bool = True
    heartbeat: float = 1.0

    @property
    def enabled(self):
        """True when this node publishes or subscribes."""
        return bool(self.publish or self.subscribe)


@dataclass(frozen=True)
class ImageSettings:
    """The ``[images]`` section, with the automatic values resolved."""

    path: str
    umask: int
    io_threads: int
    max_pending: int
    render_processes: int
    render_process_memory: int
    transliterate_paths: bool
    engine: str
    quality: int
    max_pixels: int
    max_frames: int
    max_metadata_bytes: int
    max_result_side: int
    max_result_pixels: int
    backend: str = "tree"  # or "s3"


@dataclass(frozen=True)
class S3Settings:
    """The ``[s3]`` section, paths resolved; ``bucket`` empty when no part uses S3."""

    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    addressing_style: str = "auto"
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    credentials_file: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    max_connections: int = 16
    cache_control: str = ""
    max_bytes: int = 50 << 20
    revalidate: float = 60.0
    origins_fallback: bool = False


@dataclass(frozen=True)
class OperationsSettings:
    """``[metrics]`` and ``[errors]``: Prometheus, statsd, Sentry."""

    metrics_enabled: bool = True
    metrics_open: bool = False
    metrics_listen: tuple = ()  # endpoint descriptions; empty: /metrics on the main port
    statsd: tuple | None = None  # (host, port)
    statsd_prefix: str = "imagepipe"
    sentry_dsn: str = field(default="", repr=False)
    environment: str = ""


@dataclass(frozen=True)
class MountSettings:
    """One enabled URL dialect: where it is mounted, its sources and its own settings."""

    dialect: str  # native, openross, wanelo, phizer, dirpy
    prefix: str  # "/r/"
    source: str  # "tree", "origins" or "s3"
    settings: object  # the dialect module's settings value


@dataclass(frozen=True)
class HttpSettings:
    """The ``[http]`` section: the result cache, signing, and the enabled mounts."""

    cache_path: str
    cache_max_bytes: int
    max_age: float
    accel_redirect: str
    quality: int
    auto_avif: bool
    sign_keys: str
    mounts: tuple  # MountSettings
    origins: object  # imagepipe.web.origins.settings.OriginSettings, or None
    render_threads: int = 1
    max_render_pending: int = 4
    max_client_renders: int = 6


@dataclass(frozen=True)
class MagickSettings:
    """The ``[imagemagick]`` section: resource limits and extra environment."""

    convert: str
    thread_limit: int
    time_limit: int
    limits: tuple  # ((wand limit name, value), ...)
    environment: tuple  # ((MAGICK_* name, value), ...) exported as given


@dataclass(frozen=True)
class Config:
    """A loaded, validated configuration."""

    filename: str
    network: NetworkSettings
    replication: ReplicationSettings
    images: ImageSettings
    imagemagick: MagickSettings
    http: HttpSettings = None
    s3: S3Settings = S3Settings()
    operations: OperationsSettings = OperationsSettings()

    @property
    def path_rules(self):
        """The ``PathRules`` every client path (and a tree view's) is cleaned by."""
        return PathRules(self.images.transliterate_paths)

    @property
    def image_limits(self):
        """The ``ImageLimits`` every engine enforces."""
        images = self.images
        return ImageLimits(max_pixels=images.max_pixels, max_frames=images.max_frames,
                           time_limit=self.imagemagick.time_limit,
                           max_metadata_bytes=images.max_metadata_bytes,
                           max_result_side=images.max_result_side,
                           max_result_pixels=images.max_result_pixels)
