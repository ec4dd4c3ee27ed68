"""Loading a config file: read, check every value, type it, check across fields.

Any problem becomes a ``ConfigError`` whose message is one line naming the
file, section, key, the bad value and what was expected.
"""

import ipaddress
import os
import resource
import socket

from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
from validate import Validator

from imagepipe.auth import read_credentials
from imagepipe.config.checks import CHECKS, expected
from imagepipe.config.model import (ClientLimits, Config, HttpSettings, ImageSettings,
                                    MagickSettings, MountSettings, NetworkSettings,
                                    OperationsSettings, ReplicationSettings, S3Settings)
from imagepipe.config.settings import declared, free_sections, lookup
from imagepipe.config.spec import configspec
from imagepipe.errors import ConfigError
from imagepipe.paths import PathRules
from imagepipe.web import dialects


_WAND_LIMITS = {
    "MAGICK_MEMORY_LIMIT": "memory",
    "MAGICK_MAP_LIMIT": "map",
    "MAGICK_DISK_LIMIT": "disk",
    "MAGICK_AREA_LIMIT": "area",
    "MAGICK_WIDTH_LIMIT": "width",
    "MAGICK_HEIGHT_LIMIT": "height",
}


def load(filename):
    """Read, validate and type the config file; raise ``ConfigError`` on any problem."""
    try:
        raw = ConfigObj(filename, configspec=configspec(), file_error=True,
                        interpolation=False, encoding="utf-8")
    except (OSError, ConfigObjError) as error:
        raise ConfigError(f"{filename}: cannot read config: {_first_line(error)}") from None
    result = raw.validate(Validator(CHECKS), preserve_errors=True)
    if result is not True:
        for sections, key, error in flatten_errors(raw, result):
            section = "/".join(sections)
            if key is None:
                raise ConfigError(f"{filename}: [{section}] section is missing or malformed")
            if section in free_sections():
                raise ConfigError(f"{filename}: [{section}] {key}: expected a text value")
            setting = lookup(section)[key]
            if error is False:
                raise ConfigError(f"{filename}: [{section}] {key} is missing: expected "
                                  f"{expected(setting)}")
            value = _raw_value(raw, sections, key)
            raise ConfigError(f"{filename}: [{section}] {key} = {value!r}: expected "
                              f"{expected(setting)}")
    _refuse_unknown(filename, raw)
    return _typed(filename, raw)


def _raw_value(raw, sections, key):
    node = raw
    for name in sections:
        node = node[name]
    return node.get(key)


def _refuse_unknown(filename, raw):
    for sections, name in get_extra_values(raw):
        section = "/".join(sections)
        if section == "imagemagick/env" and name.startswith("MAGICK_"):
            continue
        where = f"[{section}] {name}" if sections else f"[{name}]"
        raise ConfigError(f"{filename}: {where}: unknown setting (known: "
                          f"{_known_in(section)})")


def _known_in(section):
    keys = sorted(lookup(section)) or sorted({s.section for s in declared()})
    return ", ".join(keys)


def _typed(filename, raw):
    from imagepipe import listening  # Twisted's endpoint parser: only when a file loads

    base = os.path.dirname(os.path.abspath(filename))
    net = raw["network"]
    images = raw["images"]
    magick = raw["imagemagick"]
    env = magick["env"]

    root = os.path.join(base, images["path"])
    if not os.path.isdir(root):
        raise ConfigError(f"{filename}: [images] path = {images['path']!r}: expected "
                          f"an existing directory")
    auth_file, credentials = net["auth_file"], ()
    if net["auth"] != "none":
        if not auth_file:
            raise ConfigError(f"{filename}: [network] auth_file = '': expected a "
                              f"credentials file when auth = {net['auth']}")
        auth_file = os.path.join(base, auth_file)
        if not os.path.isfile(auth_file):
            raise ConfigError(f"{filename}: [network] auth_file = {net['auth_file']!r}: "
                              f"expected an existing file")
        try:
            credentials = read_credentials(net["auth"], auth_file)
        except ValueError as error:
            raise ConfigError(f"{filename}: [network] auth_file = {net['auth_file']!r}: "
                              f"{error}") from None
    threads = images["io_threads"] or (os.cpu_count() or 1)
    declared = lookup("imagemagick/env")
    http = _http(filename, base, raw["http"], os.path.realpath(root),
                 PathRules(images["transliterate_paths"]), images["render_processes"])
    return Config(
        filename=filename,
        network=NetworkSettings(
            interface=net["interface"], port=net["port"],
            listen=listening.descriptions(filename, net["listen"], net["interface"],
                                          net["port"]),
            auth=net["auth"],
            auth_file=auth_file, max_request_bytes=net["max_request_bytes"],
            serve_images=net["serve_images"], shutdown_timeout=net["shutdown_timeout"],
            access_log=(net["access_log"] if net["access_log"] in ("", "-")
                        else os.path.join(base, net["access_log"])),
            clients=_client_limits(filename, net), credentials=credentials,
            node_name=net["node_name"] or socket.gethostname(),
            log_format=net["log_format"]),
        replication=_replication(filename, base, raw["replication"], os.path.realpath(root)),
        images=ImageSettings(
            path=os.path.realpath(root), umask=images["umask"], io_threads=threads,
            render_processes=images["render_processes"],
            render_process_memory=images["render_process_memory"],
            max_pending=images["max_pending"] or 4 * threads,
            transliterate_paths=images["transliterate_paths"], engine=images["engine"],
            quality=images["quality"],
            max_pixels=images["max_pixels"], max_frames=images["max_frames"],
            max_metadata_bytes=images["max_metadata_bytes"],
            max_result_side=images["max_result_side"],
            max_result_pixels=images["max_result_pixels"], backend=images["backend"]),
        http=http,
        s3=_s3(filename, base, raw["s3"], images["backend"], http),
        operations=_operations(filename, raw["metrics"], raw["errors"]),
        imagemagick=MagickSettings(
            convert=magick["convert"],
            thread_limit=env["MAGICK_THREAD_LIMIT"],
            time_limit=env["MAGICK_TIME_LIMIT"],
            limits=tuple((wand, env[name]) for name, wand in _WAND_LIMITS.items()),
            environment=tuple((name, str(value)) for name, value in env.items()
                              if name not in declared)),
    )


def _operations(filename, metrics, errors):
    """``[metrics]`` and ``[errors]``, typed; the statsd address split."""
    from imagepipe import listening

    statsd = None
    if metrics["statsd"]:
        host, _, port = metrics["statsd"].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{filename}: [metrics] statsd = {metrics['statsd']!r}: expected "
                              f"host:port, such as 127.0.0.1:8125")
        statsd = (host.strip("[]"), int(port))
    return OperationsSettings(
        metrics_enabled=metrics["enabled"], metrics_open=metrics["open"],
        metrics_listen=listening.checked(filename, "[metrics] listen", metrics["listen"]),
        statsd=statsd, statsd_prefix=metrics["statsd_prefix"],
        sentry_dsn=errors["sentry_dsn"] or os.environ.get("SENTRY_DSN", ""),
        environment=errors["environment"])


def _s3(filename, base, section, backend, http):
    """The typed ``[s3]`` section: required by backend = s3 and by mounts with source = s3."""
    users = (["[images] backend = s3"] if backend == "s3" else []) + [
        f"[http/{mount.dialect}] source = s3" for mount in http.mounts if mount.source == "s3"]
    if not users:
        return S3Settings()
    where = f"{filename}: [s3]"
    if section["origins_fallback"] and http.origins is None:
        raise ConfigError(f"{where} origins_fallback = true: expected [http/origins] master "
                          f"to be set")
    if not section["bucket"]:
        raise ConfigError(f"{where} bucket = '': expected a bucket name for {users[0]}")
    if bool(section["access_key_id"]) != bool(section["secret_access_key"]):
        raise ConfigError(f"{where} access_key_id and secret_access_key: expected both or "
                          f"neither")
    credentials = section["credentials_file"]
    if credentials:
        credentials = os.path.join(base, credentials)
        if not os.path.isfile(credentials):
            raise ConfigError(f"{where} credentials_file = {section['credentials_file']!r}: "
                              f"expected an existing file")
    prefix = section["prefix"].strip("/")
    return S3Settings(
        bucket=section["bucket"], prefix=prefix + "/" if prefix else "",
        endpoint_url=section["endpoint_url"], region=section["region"],
        addressing_style=section["addressing_style"], access_key_id=section["access_key_id"],
        secret_access_key=section["secret_access_key"], credentials_file=credentials,
        connect_timeout=section["connect_timeout"], read_timeout=section["read_timeout"],
        max_attempts=section["max_attempts"], max_connections=section["max_connections"],
        cache_control=section["cache_control"], max_bytes=section["max_bytes"],
        revalidate=section["revalidate"], origins_fallback=section["origins_fallback"])


def _replication(filename, base, section, root):
    from imagepipe.replication.endpoints import sync_endpoint

    def path(key):
        return os.path.join(base, section[key]) if section[key] else ""

    secret = path("curve_secret_key")
    public_dir = path("curve_public_keys")
    server_keys = tuple(os.path.join(base, p) for p in section["curve_subscribe_keys"])
    if secret:
        for key, value, check in (("curve_secret_key", secret, os.path.isfile),
                                  ("curve_public_keys", public_dir, os.path.isdir)):
            if not value or not check(value):
                raise ConfigError(f"{filename}: [replication] {key} = {section[key]!r}: "
                                  f"expected an existing "
                                  f"{'file' if check is os.path.isfile else 'directory'}")
        if len(server_keys) != len(section["subscribe"]):
            raise ConfigError(f"{filename}: [replication] curve_subscribe_keys: expected "
                              f"one public key file per subscribe endpoint "
                              f"({len(section['subscribe'])})")
    return ReplicationSettings(
        publish=section["publish"], subscribe=section["subscribe"],
        sync=section["sync"] or tuple(sync_endpoint(e) for e in section["publish"]),
        state_path=path("state_path") or os.path.join(root, ".imagepipe"),
        retention=section["retention"], high_water_mark=section["high_water_mark"],
        max_message_bytes=section["max_message_bytes"], curve_secret_key=secret,
        curve_public_keys=public_dir, curve_subscribe_keys=server_keys,
        forward=section["forward"])


def _http(filename, base, section, root, rules, render_processes):
    """The typed ``[http]`` section; each dialect's settings built and checked here."""
    mounts, prefixes = [], {}
    for dialect in dialects.NAMES:
        values = section[dialect]
        if not values["enabled"]:
            continue
        where = f"{filename}: [http/{dialect}]"
        if values["prefix"] in prefixes:
            raise ConfigError(f"{where} prefix = {values['prefix']!r}: already the prefix "
                              f"of [http/{prefixes[values['prefix']]}]")
        prefixes[values["prefix"]] = dialect
        try:
            settings = dialects.named(dialect).settings_from(values, rules)
        except ValueError as error:
            raise ConfigError(f"{where} {error}") from None
        mounts.append(MountSettings(dialect, values["prefix"], values["source"], settings))
    origins = None
    if section["origins"]["master"]:
        from imagepipe.web.origins.settings import OriginSettings

        values = section["origins"]
        try:
            origins = OriginSettings(
                master=values["master"], fallbacks=values["fallbacks"], allow=values["allow"],
                connect_timeout=values["connect_timeout"], read_timeout=values["read_timeout"],
                max_bytes=values["max_bytes"], max_redirects=values["max_redirects"])
        except ValueError as error:
            raise ConfigError(f"{filename}: [http/origins] {error}") from None
    for mount in mounts:
        if mount.source == "origins" and origins is None:
            raise ConfigError(f"{filename}: [http/{mount.dialect}] source = origins: "
                              f"expected [http/origins] master to be set")
    sign_keys = os.path.join(base, section["sign_keys"]) if section["sign_keys"] else ""
    if sign_keys and not os.path.isfile(sign_keys):
        raise ConfigError(f"{filename}: [http] sign_keys = {section['sign_keys']!r}: "
                          f"expected an existing file")
    cache = section["cache_path"]
    threads = section["render_threads"] or max(os.cpu_count() or 1, render_processes)
    return HttpSettings(
        render_threads=threads, max_render_pending=section["max_render_pending"] or 4 * threads,
        max_client_renders=section["max_client_renders"],
        cache_path=os.path.join(base, cache) if cache else os.path.join(root, ".imagepipe",
                                                                        "cache"),
        cache_max_bytes=section["cache_max_bytes"], max_age=section["max_age"],
        accel_redirect=section["accel_redirect"], quality=section["quality"],
        auto_avif=section["auto_avif"], sign_keys=sign_keys, mounts=tuple(mounts),
        origins=origins)


def _client_limits(filename, net):
    """The ``ClientLimits`` of ``[network]``: the proxies parsed, the totals under the fd limit."""
    exempt = []
    for entry in net["trusted_proxies"]:
        try:
            exempt.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{filename}: [network] trusted_proxies = {entry!r}: expected "
                              f"an address or a network (127.0.0.1, 10.0.0.0/8)") from None
    # Room for the files, sockets and render processes of the node itself.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = max(16, soft - 128) if soft != resource.RLIM_INFINITY else net["max_connections"]
    return ClientLimits(head_timeout=net["head_timeout"], body_timeout=net["body_timeout"],
                        body_min_rate=max(1, net["body_min_rate"]),
                        max_connections=min(net["max_connections"], room),
                        max_client_connections=net["max_client_connections"],
                        max_body_bytes=net["max_body_bytes_in_flight"], exempt=tuple(exempt),
                        header=net["client_address_header"])


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
