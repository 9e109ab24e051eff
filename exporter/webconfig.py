"""The ``--web.config.file``: Prometheus exporter-toolkit style TLS and basic auth.

The file format is the one every Go exporter reads
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md),
so an operator can reuse the file they already have::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: ca.crt                         # optional
      min_version: TLS12                             # optional
    http_server_config:
      headers:
        X-Content-Type-Options: nosniff
    basic_auth_users:
      prometheus: $2y$10$...        # bcrypt hash, e.g. htpasswd -nBC 10 "" | tr -d ':\\n'

Everything is validated when the file is loaded, so a mistake stops start-up
with one line naming the file and the problem. Keys the toolkit knows but this
exporter cannot honour (inline certificates, Go cipher suite names, SAN
allow-lists, rate limits) are rejected rather than silently ignored: a security
setting that is ignored is worse than a start-up error. Certificates are read
when the file is loaded and again whenever :meth:`WebConfig.ssl_context` is
called (the HTTP server does so when the files change, for rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import bcrypt
import yaml

T = TypeVar("T")

TOP_LEVEL_KEYS = frozenset({"tls_server_config", "http_server_config", "basic_auth_users"})
TLS_KEYS = frozenset(
    {
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
    }
)
HTTP_KEYS = frozenset({"headers", "http2"})
# Keys exporter-toolkit knows that this exporter cannot honour on Python's ssl module.
UNSUPPORTED_KEYS = {
    "rate_limit": "rate limiting is not supported",
    "tls_server_config.cert": "inline certificates are not supported; use cert_file",
    "tls_server_config.key": "inline keys are not supported; use key_file",
    "tls_server_config.client_ca": "inline CA certificates are not supported; use client_ca_file",
    "tls_server_config.cipher_suites": "Go cipher suite names are not supported; "
    "the OpenSSL defaults are used",
    "tls_server_config.curve_preferences": "curve preferences are not supported; "
    "the OpenSSL defaults are used",
    "tls_server_config.client_allowed_sans": "client SAN allow-lists are not supported",
}

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
NO_CLIENT_CERT = "NoClientCert"
CLIENT_AUTH_MODES = {
    NO_CLIENT_CERT: ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go accepts these, but they take a client certificate without verifying it, which
# Python's ssl module cannot do (and the toolkit's docs call them insecure).
UNVERIFIED_CLIENT_AUTH = frozenset(
    {"RequestClientCert", "RequireAnyClientCert", "RequireClientCert"}
)

# The only response headers the toolkit lets a user set, with their allowed values
# (None: any value).
CONFIGURABLE_HEADERS: Mapping[str, tuple[str, ...] | None] = MappingProxyType(
    {
        "Strict-Transport-Security": None,
        "X-Content-Type-Options": ("nosniff",),
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-XSS-Protection": None,
        "Content-Security-Policy": None,
    }
)

BCRYPT_HASH = re.compile(r"\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
BCRYPT_MAX_PASSWORD_BYTES = 72  # bcrypt ignores the rest; the bcrypt package refuses longer input
AUTH_CACHE_SIZE = 100


class WebConfigError(ValueError):
    """The web config file is unreadable or invalid; the message names the file."""


def _run_inline(function: Callable[..., T], *args: Any) -> T:
    return function(*args)


@dataclass(frozen=True)
class WebConfig:
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = None
    client_auth_type: str = NO_CLIENT_CERT
    min_tls_version: str = "TLS12"
    max_tls_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    # Successful checks only, keyed by sha256(Authorization header); bounded.
    _auth_cache: dict[bytes, None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_users)

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    def check_basic_auth(
        self,
        authorization_header: str | None,
        *,
        run_blocking: Callable[..., Any] = _run_inline,
    ) -> bool:
        """True when the header carries valid credentials (or no users are configured).

        bcrypt costs 50-250 ms, so a successful check is cached by the header's
        sha256; a failed one is never cached and always pays bcrypt. An unknown
        user is checked against a real user's hash, so its timing looks like a
        wrong password. *run_blocking(function, *args)* runs the bcrypt call; the
        HTTP server passes one that runs it on a thread so the gevent hub (and
        with it the WebSocket reader) is not frozen.
        """
        if not self.basic_auth_users:
            return True
        if not authorization_header:
            return False
        cache_key = hashlib.sha256(authorization_header.encode("utf-8", "surrogateescape")).digest()
        if cache_key in self._auth_cache:
            return True
        credentials = _parse_basic_credentials(authorization_header)
        if credentials is None:
            return False
        user, password = credentials
        known_hash = self.basic_auth_users.get(user)
        reference_hash = known_hash or next(iter(self.basic_auth_users.values()))
        matches = run_blocking(bcrypt.checkpw, password[:BCRYPT_MAX_PASSWORD_BYTES], reference_hash)
        if not (matches and known_hash is not None):
            return False
        if len(self._auth_cache) >= AUTH_CACHE_SIZE:
            self._auth_cache.clear()
        self._auth_cache[cache_key] = None
        return True

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh server-side context from the files, or None when TLS is off.

        Raises ssl.SSLError, OSError or WebConfigError (encrypted key) when the
        files are bad; load_web_config reports those as WebConfigError.
        """
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_tls_version]
        context.maximum_version = TLS_VERSIONS[self.max_tls_version]
        if self.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        # An encrypted key would make OpenSSL prompt on the terminal; refuse instead.
        context.load_cert_chain(self.tls_cert_file, self.tls_key_file, password=_no_passphrase)
        context.verify_mode = CLIENT_AUTH_MODES[self.client_auth_type]
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=self.client_ca_file)
        return context

    def tls_files(self) -> tuple[str, ...]:
        """The files ssl_context() reads (to notice rotation)."""
        return tuple(
            f for f in (self.tls_cert_file, self.tls_key_file, self.client_ca_file) if f is not None
        )


def _no_passphrase() -> bytes:
    raise WebConfigError("the key file is encrypted; encrypted keys are not supported")


def _parse_basic_credentials(header: str) -> tuple[str, bytes] | None:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def load_web_config(path: str) -> WebConfig:
    """Read, validate and return the web config; raise WebConfigError naming path."""
    try:
        return _parse(path)
    except WebConfigError as error:
        raise WebConfigError(f"web config {path}: {error}") from None


def _parse(path: str) -> WebConfig:
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream)
    except OSError as error:
        raise WebConfigError(f"cannot read file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise WebConfigError("file is not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise WebConfigError(f"invalid YAML: {_yaml_problem(error)}") from None
    root = _mapping(document, "", TOP_LEVEL_KEYS)
    base_dir = os.path.dirname(os.path.abspath(path))
    tls = _parse_tls(
        _mapping(root.get("tls_server_config"), "tls_server_config", TLS_KEYS), base_dir
    )
    http = _mapping(root.get("http_server_config"), "http_server_config", HTTP_KEYS)
    if not isinstance(http.get("http2", True), bool):
        raise WebConfigError("http_server_config.http2: must be true or false")
    config = WebConfig(
        basic_auth_users=MappingProxyType(_parse_users(root.get("basic_auth_users"))),
        headers=MappingProxyType(_parse_headers(http.get("headers"))),
        **tls,
    )
    try:
        config.ssl_context()
    except (ssl.SSLError, OSError, WebConfigError) as error:
        raise WebConfigError(
            f"tls_server_config: cannot load the certificate, key or CA: {error}"
        ) from None
    return config


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    return f"{problem} at line {mark.line + 1}" if mark is not None else problem


def _mapping(value: object, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise WebConfigError(f"{where or 'the top level'} must be a mapping, not {kind}")
    for key in value:
        dotted = f"{where}.{key}" if where else str(key)
        if dotted in UNSUPPORTED_KEYS:
            raise WebConfigError(f"{dotted}: {UNSUPPORTED_KEYS[dotted]}")
        if key not in allowed:
            raise WebConfigError(
                f"unknown key {key!r} in {where or 'the top level'} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where}: must be a non-empty string")
    return value


def _choice(value: object, where: str, choices: Mapping[str, Any]) -> str:
    text = _string(value, where)
    if text not in choices:
        raise WebConfigError(f"{where}: {text!r} is not one of {', '.join(choices)}")
    return text


def _readable_file(value: object, where: str, base_dir: str) -> str:
    file_path = os.path.join(base_dir, _string(value, where))
    try:
        with open(file_path, "rb"):
            pass
    except OSError as error:
        reason = error.strerror or error
        raise WebConfigError(f"{where}: cannot read {file_path}: {reason}") from None
    return file_path


def _parse_tls(tls: dict[str, Any], base_dir: str) -> dict[str, Any]:
    if not tls:
        return {}
    where = "tls_server_config"
    for key in ("cert_file", "key_file"):
        if key not in tls:
            raise WebConfigError(f"{where}.{key}: missing (TLS needs both cert_file and key_file)")
    client_auth_type = tls.get("client_auth_type", NO_CLIENT_CERT)
    if client_auth_type in UNVERIFIED_CLIENT_AUTH:
        raise WebConfigError(
            f"{where}.client_auth_type: {client_auth_type} accepts unverified client "
            "certificates and is not supported; use RequireAndVerifyClientCert"
        )
    client_auth_type = _choice(client_auth_type, f"{where}.client_auth_type", CLIENT_AUTH_MODES)
    client_ca_file = None
    if "client_ca_file" in tls:
        client_ca_file = _readable_file(tls["client_ca_file"], f"{where}.client_ca_file", base_dir)
    if client_ca_file is not None and client_auth_type == NO_CLIENT_CERT:
        raise WebConfigError(
            f"{where}: client_ca_file is set but client_auth_type is {NO_CLIENT_CERT}; "
            "set client_auth_type: RequireAndVerifyClientCert"
        )
    if client_ca_file is None and client_auth_type != NO_CLIENT_CERT:
        raise WebConfigError(
            f"{where}: client_auth_type {client_auth_type} needs client_ca_file to verify against"
        )
    min_version = _choice(tls.get("min_version", "TLS12"), f"{where}.min_version", TLS_VERSIONS)
    max_version = _choice(tls.get("max_version", "TLS13"), f"{where}.max_version", TLS_VERSIONS)
    if TLS_VERSIONS[min_version] > TLS_VERSIONS[max_version]:
        raise WebConfigError(
            f"{where}: min_version {min_version} is above max_version {max_version}"
        )
    prefer_server = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer_server, bool):
        raise WebConfigError(f"{where}.prefer_server_cipher_suites: must be true or false")
    return {
        "tls_cert_file": _readable_file(tls["cert_file"], f"{where}.cert_file", base_dir),
        "tls_key_file": _readable_file(tls["key_file"], f"{where}.key_file", base_dir),
        "client_ca_file": client_ca_file,
        "client_auth_type": client_auth_type,
        "min_tls_version": min_version,
        "max_tls_version": max_version,
        "prefer_server_cipher_suites": prefer_server,
    }


def _parse_users(users: object) -> dict[str, bytes]:
    if users is None:
        return {}
    if not isinstance(users, dict):
        raise WebConfigError("basic_auth_users: must be a mapping of user name to bcrypt hash")
    parsed = {}
    for user, password_hash in users.items():
        if not isinstance(user, str) or not user:
            raise WebConfigError(
                f"basic_auth_users: user name {user!r} must be a non-empty string (quote it)"
            )
        if ":" in user:
            raise WebConfigError(f"basic_auth_users: user name {user!r} must not contain ':'")
        # Never echo the value: a hash is a secret too.
        if not isinstance(password_hash, str) or not BCRYPT_HASH.fullmatch(password_hash):
            raise WebConfigError(
                f"basic_auth_users.{user}: not a bcrypt hash (expected $2y$<cost>$<53 chars>, "
                "e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n')"
            )
        parsed[user] = password_hash.encode("ascii")
    return parsed


def _parse_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise WebConfigError("http_server_config.headers: must be a mapping")
    parsed = {}
    for name, value in headers.items():
        if name not in CONFIGURABLE_HEADERS:
            raise WebConfigError(
                f"http_server_config.headers: {name!r} cannot be configured "
                f"(allowed: {', '.join(CONFIGURABLE_HEADERS)})"
            )
        if value is None or value == "":
            continue  # blank means unset, as in exporter-toolkit
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise WebConfigError(f"http_server_config.headers.{name}: must be a one-line string")
        allowed = CONFIGURABLE_HEADERS[name]
        if allowed is not None and value not in allowed:
            raise WebConfigError(
                f"http_server_config.headers.{name}: {value!r} is not one of {', '.join(allowed)}"
            )
        parsed[name] = value
    return parsed
