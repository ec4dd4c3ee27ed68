"""The node's own settings, declared once, and the whole list with the dialects'.

This module declares every key that is not a URL dialect's; each dialect
module declares its own section (``imagepipe.web.dialects``).  ``declared()`` is the
one list, in file order, that the configobj spec, the typed ``Config`` and
``imagepipe.ini.dist`` are all derived from.
"""

import functools

from imagepipe.declarations import Setting
from imagepipe.imaging import engines
from imagepipe.web import dialects

_BEFORE_DIALECTS = (
    Setting("network", "listen", "string_list", "",
            "Where to listen for XML-RPC calls and the read-only tree: Twisted endpoint "
            "descriptions, comma separated. tcp:8085:interface=127.0.0.1; "
            "ssl:8443:interface=0.0.0.0:privateKey=key.pem:certKey=cert.pem (TLS); "
            "unix:/run/imagepipe/imagepipe.sock:mode=660; systemd:domain=INET:index=0 "
            "(a socket systemd opened: examples/imagepipe.socket). A colon inside a value "
            "is escaped with a backslash; file names are taken from twistd's working "
            "directory. Empty: interface and port below, as tcp:PORT:interface=ADDRESS.",
            example="tcp:8085:interface=127.0.0.1"),
    Setting("network", "interface", "string", "127.0.0.1",
            "Address to listen on for XML-RPC calls. Use 0.0.0.0 to listen on every "
            "interface (only behind a firewall, or with auth enabled)."),
    Setting("network", "port", "integer(0, 65535)", "8085",
            "TCP port for XML-RPC calls (POST /) and the read-only tree (GET /images/)."),
    Setting("network", "auth", "option('none', 'basic', 'token')", "none",
            "Authentication of XML-RPC calls: none, basic (HTTP Basic, 'user:password' "
            "lines in auth_file) or token ('Authorization: Bearer <token>', one token per "
            "line in auth_file)."),
    Setting("network", "auth_file", "string", "",
            "File holding the credentials for auth = basic or token; relative paths are "
            "taken from the directory of this file."),
    Setting("network", "max_request_bytes", "byte_size", "64MiB",
            "Largest XML-RPC request body accepted; larger ones get HTTP 413 before the "
            "body is read. Units: B, KiB, MiB, GiB (or KB, MB, GB)."),
    Setting("network", "serve_images", "boolean", "true",
            "Serve the stored tree read-only at /images/ (no listings, no dotfiles)."),
    Setting("network", "access_log", "string", "-",
            "Where each HTTP request is logged (combined log format): - for the twistd "
            "log, a file name (relative to this file's directory), or empty for nowhere "
            "(e.g. behind nginx, which logs them)."),
    Setting("network", "node_name", "string", "",
            "This node's name in /status, /metrics and error reports; empty: the host name."),
    Setting("network", "log_format", "option('text', 'json')", "text",
            "How twistd writes its log: text lines, or json (one JSON object per line, "
            "for log shippers: Twisted's JSON log format with the formatted message in "
            "\"text\"). Either goes where twistd logs: standard output with -n, else "
            "--logfile."),
    Setting("network", "shutdown_timeout", "float(0, 3600)", "30",
            "Seconds to wait for calls in flight to finish on SIGTERM before exiting."),
    Setting("network", "head_timeout", "float(1, 3600)", "30",
            "Seconds a client has to send a whole request line and headers, however the "
            "bytes trickle in (then 408 and the connection closes; nginx's "
            "client_header_timeout, imgproxy's read timeout)."),
    Setting("network", "body_timeout", "float(1, 3600)", "30",
            "Seconds a request body may take, plus one second for every body_min_rate "
            "bytes received: a stalled upload gets 408 and is dropped."),
    Setting("network", "body_min_rate", "byte_size", "16KiB",
            "Bytes per second a request body must average once body_timeout has passed."),
    Setting("network", "max_connections", "integer(1, 1000000)", "1000",
            "Open connections, all clients together; past it a new connection is answered "
            "503 and closed. Held below the process's open-file limit."),
    Setting("network", "max_client_connections", "integer(1, 1000000)", "64",
            "Open connections from one client address; past it 429 with Retry-After."),
    Setting("network", "max_body_bytes_in_flight", "byte_size", "256MiB",
            "Request bodies being received, all connections together (counted from "
            "Content-Length, or as chunks arrive); past it 503 with Retry-After."),
    Setting("network", "trusted_proxies", "string_list", "",
            "Addresses or networks of proxies in front (nginx: 127.0.0.1): their "
            "connections count toward max_connections only, not as one client, and "
            "the client of a request is what they say in client_address_header."),
    Setting("network", "client_address_header", "option('x-forwarded-for', 'x-real-ip')",
            "x-forwarded-for",
            "The one header in which trusted_proxies name a request's client: "
            "x-forwarded-for (the rightmost entry that is not a trusted proxy: each proxy "
            "must append the address it saw, as nginx's $proxy_add_x_forwarded_for "
            "does) or x-real-ip (which the proxy must set, never pass through)."),
    Setting("replication", "publish", "endpoints", "",
            "ZeroMQ endpoint(s) other nodes connect to for this node's writes.",
            example="tcp://127.0.0.1:8086"),
    Setting("replication", "subscribe", "endpoints", "",
            "ZeroMQ endpoint(s) of the nodes whose writes this node applies.",
            example="tcp://127.0.0.1:9086"),
    Setting("replication", "sync", "endpoints", "",
            "Endpoint(s) of this node's catch-up service; empty means each publish "
            "endpoint with its TCP port + 1. Peers find it the same way from their "
            "subscribe endpoints."),
    Setting("replication", "forward", "boolean", "true",
            "Re-publish the writes this node applies from its peers, keeping their "
            "origin. Needed in a ring; in a full mesh set false, so that each write "
            "crosses each link once."),
    Setting("replication", "state_path", "string", "",
            "Directory of the journal and the peer state; empty means .imagepipe under "
            "[images] path (hidden: never served)."),
    Setting("replication", "retention", "duration", "7d",
            "How long journal records and delete tombstones are kept when a peer has not "
            "acknowledged them. Units: s, m, h, d."),
    Setting("replication", "high_water_mark", "integer(10, 10000000)", "1000",
            "Messages ZeroMQ may queue per peer and socket before it drops (the peer then "
            "catches up from the journal)."),
    Setting("replication", "max_message_bytes", "byte_size", "256MiB",
            "Largest message part accepted from a peer; a peer sending more is disconnected."),
    Setting("replication", "curve_secret_key", "string", "",
            "This node's CURVE secret key file (from `imagepipe keygen`); setting it "
            "turns on authentication and encryption of every replication socket."),
    Setting("replication", "curve_public_keys", "string", "",
            "Directory of the public key files of the peers allowed to connect."),
    Setting("replication", "curve_subscribe_keys", "string_list", "",
            "Public key file of each subscribe endpoint, in the same order."),
    Setting("images", "path", "directory", None,
            "Root of the stored tree; every client path is relative to it. Must exist. "
            "Relative paths are taken from the directory of this file.",
            example="var/images"),
    Setting("images", "backend", "option('tree', 's3')", "tree",
            "Where the stored images live: tree (the directory path above) or s3 (the "
            "[s3] bucket; path then holds only the node's own state and result cache, "
            "and /images/ is not served: the bucket serves its objects)."),
    Setting("images", "umask", "umask", "0022",
            "Umask applied to created images (0666 & ~umask) and directories "
            "(0777 & ~umask). Octal with a leading 0 (0022) or decimal (18)."),
    Setting("images", "io_threads", "integer(0, 256)", "0",
            "Threads doing the image and file work of XML-RPC calls (store, move, delete, "
            "info); on-the-fly renders have their own ([http] render_threads). 0 means "
            "one per CPU."),
    Setting("images", "render_processes", "integer(0, 256)", "0",
            "Child processes that render on-the-fly requests; 0 renders in the worker "
            "threads. Python's interpreter lock keeps one process from using more than "
            "about 1.8 cores: set it to the number of CPUs on a busy image server."),
    Setting("images", "render_process_memory", "byte_size", "512MiB",
            "A render process whose resident memory is over this after a job (a huge "
            "image leaves the heap large) is replaced by a fresh one."),
    Setting("images", "max_pending", "integer(0, 100000)", "0",
            "Calls that may wait for a free thread; more get fault 1003 (busy). "
            "0 means 4 x io_threads."),
    Setting("images", "transliterate_paths", "boolean", "false",
            "Turn every client path into ASCII with Unidecode (zdjęcia/żółw.jpg -> "
            "zdjecia/zolw.jpg), identically for store, move, delete and info."),
    Setting("images", "engine", "option(" + ", ".join(repr(n) for n in engines.NAMES) + ")",
            "wand",
            "Imaging engine: wand (ImageMagick, the default) or pillow (faster, same "
            "results)."),
    Setting("images", "quality", "integer(1, 100)", "85",
            "Default encoder quality for JPEG, WebP, AVIF and HEIC when a call does not "
            "give options.quality."),
    Setting("images", "max_pixels", "pixel_count", "50MP",
            "Largest source accepted, in pixels, all frames of an animation summed; "
            "checked from the header before decoding. Also caps each output. "
            "Units: P, KP, MP, GP."),
    Setting("images", "max_frames", "integer(1, 100000)", "500",
            "Most frames accepted in an animated source; a GIF's are counted from its "
            "blocks before decoding."),
    Setting("images", "max_metadata_bytes", "byte_size", "4MiB",
            "Largest metadata of a source once inflated (PNG text and colour profile "
            "chunks are zlib streams: a megabyte can inflate to a gigabyte); checked "
            "before decoding."),
    Setting("images", "max_result_side", "integer(1, 65535)", "8192",
            "Longest side of any picture made (stored variant or on-the-fly result), "
            "enlarged or not; the source stored unchanged does not count "
            "(imgproxy's max_result_dimension)."),
    Setting("images", "max_result_pixels", "pixel_count", "25MP",
            "Most pixels in one frame of any picture made, as max_result_side."),
    Setting("s3", "bucket", "string", "",
            "The bucket of [images] backend = s3 and of on-the-fly mounts with source = s3.",
            example="images"),
    Setting("s3", "prefix", "string", "",
            "Key prefix of every object (e.g. images/); a path is the object "
            "<prefix><path>."),
    Setting("s3", "endpoint_url", "string", "",
            "The S3 API's URL for stores other than AWS (MinIO, Ceph RGW, R2, SeaweedFS, "
            "Garage); empty: AWS.", example="http://127.0.0.1:9000"),
    Setting("s3", "region", "string", "us-east-1", "The bucket's region."),
    Setting("s3", "addressing_style", "option('auto', 'path', 'virtual')", "auto",
            "Bucket in the path (path: most non-AWS stores) or in the host name "
            "(virtual)."),
    Setting("s3", "access_key_id", "string", "",
            "Credentials; empty: the standard AWS chain (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, the shared config and credentials files, an instance "
            "role)."),
    Setting("s3", "secret_access_key", "string", "", "The secret of access_key_id."),
    Setting("s3", "credentials_file", "string", "",
            "A file in the AWS credentials format ([default] with aws_access_key_id and "
            "aws_secret_access_key) instead of the two keys above; relative paths are "
            "taken from the directory of this file."),
    Setting("s3", "connect_timeout", "float(0.1, 600)", "5",
            "Seconds to connect to the S3 endpoint."),
    Setting("s3", "read_timeout", "float(0.1, 3600)", "30",
            "Seconds to wait for an answer once connected."),
    Setting("s3", "max_attempts", "integer(1, 20)", "3",
            "Attempts of one request, retried with backoff on throttling, 5xx and "
            "connection errors."),
    Setting("s3", "max_connections", "integer(1, 1000)", "16",
            "Connections kept open to the endpoint (about the worker threads of the node)."),
    Setting("s3", "cache_control", "text", "",
            "Cache-Control of stored objects, for when the bucket is served directly "
            "(e.g. public, max-age=86400); empty: none.", example="public, max-age=86400"),
    Setting("s3", "max_bytes", "byte_size", "50MiB",
            "Largest source read from the bucket for an on-the-fly render (then 413)."),
    Setting("s3", "revalidate", "duration", "60s",
            "How long a cached on-the-fly result of a source in the bucket is served "
            "without asking the bucket whether the source changed (a change made through "
            "this node is seen at once). Units: s, m, h, d."),
    Setting("s3", "origins_fallback", "boolean", "false",
            "Mounts with source = s3 fetch what the bucket does not have (or cannot give) "
            "from [http/origins]: the bucket as phizer's master, the origins as its "
            "slaves."),
    Setting("http", "render_threads", "integer(0, 256)", "0",
            "Threads rendering on-the-fly misses (and /health), apart from the "
            "io_threads of the XML-RPC calls, so that reads never take a write's thread "
            "or queue place. 0 means one per CPU, and at least render_processes."),
    Setting("http", "max_render_pending", "integer(0, 100000)", "0",
            "Renders (origin fetches included) that may wait for a render thread; more "
            "get 429 with Retry-After. 0 means 4 x render_threads."),
    Setting("http", "max_client_renders", "integer(1, 100000)", "6",
            "Renders one client address may have in flight (cache hits do not count; "
            "requests joining an identical render in flight do not either); past it "
            "429 with Retry-After. Behind [network] trusted_proxies the address is the "
            "proxy's X-Real-IP or X-Forwarded-For. A browser opens up to 6 connections "
            "to a host."),
    Setting("http", "cache_path", "string", "",
            "Directory of the on-the-fly result cache; empty means .imagepipe/cache "
            "under [images] path. Relative paths are taken from the directory of this "
            "file. nginx serves its files/ subdirectory (examples/nginx/)."),
    Setting("http", "cache_max_bytes", "byte_size", "1GiB",
            "Size budget of the result cache; the least recently used results are "
            "removed beyond it. 0 turns the cache off: every request renders."),
    Setting("http", "max_age", "duration", "1d",
            "Cache-Control max-age of on-the-fly results. Units: s, m, h, d."),
    Setting("http", "accel_redirect", "string", "",
            "Behind nginx: answer rendered results with X-Accel-Redirect to this "
            "internal location prefix (e.g. /_imagepipe/) instead of sending the bytes.",
            example="/_imagepipe/"),
    Setting("http", "quality", "integer(1, 100)", "80",
            "Encoder quality of on-the-fly results when the URL gives none."),
    Setting("http", "auto_avif", "boolean", "false",
            "Let format auto pick AVIF (before WebP) for clients that accept it. AVIF is "
            "several times slower to encode."),
    Setting("http", "sign_keys", "string", "",
            "File of URL signing keys, one per line (hex, at least 32 digits); the "
            "first signs (`imagepipe sign`), all verify. Empty: URLs are not signed.",
            example="signing.keys"),
)

_AFTER_DIALECTS = (
    Setting("http/origins", "master", "string", "",
            "Base URL sources are fetched from (http or https), for mounts with "
            "source = origins.", example="https://images.example.com/originals/"),
    Setting("http/origins", "fallbacks", "string_list", "",
            "More base URLs, all asked at once when the master misses or fails."),
    Setting("http/origins", "allow", "string_list", "",
            "Host names or networks (10.0.0.0/8) fetched from although private, "
            "loopback or link-local; every other such address is refused."),
    Setting("http/origins", "connect_timeout", "float(0.1, 600)", "5",
            "Seconds to connect to an origin (then 504)."),
    Setting("http/origins", "read_timeout", "float(0.1, 3600)", "10",
            "Seconds for an origin's whole answer once connected (then 504)."),
    Setting("http/origins", "max_bytes", "byte_size", "50MiB",
            "Largest source read from an origin, counted as it arrives (then 413)."),
    Setting("http/origins", "max_redirects", "integer(0, 20)", "3",
            "Redirects followed per fetch (then 502)."),
    Setting("imagemagick", "convert", "string", "/usr/bin/convert",
            "Accepted for compatibility and unused: imagepipe calls ImageMagick "
            "in-process through Wand."),
    Setting("imagemagick/env", "MAGICK_THREAD_LIMIT", "integer(1, 256)", "1",
            "Threads ImageMagick may use inside one operation. Keep 1 and raise "
            "io_threads instead."),
    Setting("imagemagick/env", "MAGICK_TIME_LIMIT", "integer(1, 86400)", "60",
            "Seconds one call may spend in ImageMagick; checked after each decode, "
            "resize and encode, the call then fails with fault 1004. Per call, not "
            "per process."),
    Setting("imagemagick/env", "MAGICK_MEMORY_LIMIT", "byte_size", "256MiB",
            "Pixel cache memory per process before ImageMagick falls back to mapped "
            "files."),
    Setting("imagemagick/env", "MAGICK_MAP_LIMIT", "byte_size", "512MiB",
            "Memory-mapped pixel cache before ImageMagick falls back to disk."),
    Setting("imagemagick/env", "MAGICK_DISK_LIMIT", "byte_size", "1GiB",
            "Disk pixel cache; an image needing more fails (fault 1004)."),
    Setting("imagemagick/env", "MAGICK_AREA_LIMIT", "pixel_count", "128MP",
            "Largest image area kept in memory; larger images use the disk cache."),
    Setting("imagemagick/env", "MAGICK_WIDTH_LIMIT", "pixel_count", "16KP",
            "Widest image ImageMagick accepts."),
    Setting("imagemagick/env", "MAGICK_HEIGHT_LIMIT", "pixel_count", "16KP",
            "Tallest image ImageMagick accepts."),
    Setting("metrics", "enabled", "boolean", "true",
            "Count for GET /metrics and statsd; false: nothing is counted and /metrics is "
            "not served."),
    Setting("metrics", "open", "boolean", "false",
            "Serve GET /metrics (Prometheus) to anyone even when [network] auth is on; "
            "false: it asks the same credentials as XML-RPC."),
    Setting("metrics", "listen", "string_list", "",
            "Serve GET /metrics on these endpoints instead of the main port (descriptions "
            "as in [network] listen; nothing else is served there, with the same auth "
            "unless open = true); empty: /metrics on the main port.",
            example="tcp:9464:interface=127.0.0.1"),
    Setting("metrics", "statsd", "string", "",
            "host:port of a statsd server to send the same counts and stage timers to (UDP); "
            "empty: none.", example="127.0.0.1:8125"),
    Setting("metrics", "statsd_prefix", "string", "imagepipe",
            "Prefix of every statsd name."),
    Setting("errors", "sentry_dsn", "string", "",
            "Sentry DSN unexpected errors are reported to (fault 1002, HTTP 500, a "
            "replicated change that failed to apply); empty: the SENTRY_DSN environment "
            "variable, or none."),
    Setting("errors", "environment", "string", "", "The Sentry environment (e.g. production)."),
)

_CORE_SECTIONS = {
    "network": "XML-RPC listener and the read-only view of the tree.",
    "replication": "ZeroMQ replication between nodes.",
    "images": "The stored tree and the image work.",
    "http": "On-the-fly resizing over HTTP and its result cache (docs/on-the-fly.md).",
    "http/origins": "HTTP servers holding the sources of mounts with source = origins.",
    "metrics": "GET /metrics for Prometheus, and statsd.",
    "errors": "Reporting unexpected errors to Sentry.",
    "s3": "An S3-compatible bucket: the store of [images] backend = s3, and the source "
          "of mounts with source = s3 (docs/scale-out.md).",
    "imagemagick": "ImageMagick (through Wand).",
    "imagemagick/env": "ImageMagick resource limits. Other MAGICK_* variables (for "
                       "example MAGICK_TMPDIR) are exported to ImageMagick as given.",
}


@functools.cache
def declared():
    """Every setting in file order: the node's, with each dialect's after ``[http]``."""
    mounts = tuple(setting for dialect in dialects.every() for setting in dialect.SETTINGS)
    return _BEFORE_DIALECTS + mounts + _AFTER_DIALECTS


@functools.cache
def section_descriptions():
    """{section: what it is for}, the dialects' own sections included."""
    described = dict(_CORE_SECTIONS)
    for dialect in dialects.every():
        described.update(dialect.SECTIONS)
    return described


@functools.cache
def free_sections():
    """{section: check}: sections whose keys are the operator's names (presets, sizes)."""
    free = {}
    for dialect in dialects.every():
        free.update(dialect.FREE_SECTIONS)
    return free


def lookup(section):
    """{key: Setting} of one section."""
    return {s.key: s for s in declared() if s.section == section}

