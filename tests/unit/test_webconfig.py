"""The --web.config.file parser and the basic auth check."""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path

import bcrypt
import pytest

from exporter.webconfig import AUTH_CACHE_SIZE, WebConfig, WebConfigError, load_web_config
from tests.support import OPENSSL, make_self_signed


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fast_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def write_config(directory: Path, text: str) -> str:
    path = directory / "web-config.yml"
    path.write_text(text)
    return str(path)


class CountingRunner:
    """Runs the bcrypt call for real and counts it."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def __call__(self, function, password, password_hash):
        self.hashes.append(password_hash)
        return function(password, password_hash)


@pytest.fixture(scope="module")
def users() -> WebConfig:
    return WebConfig(
        basic_auth_users={
            "alice": fast_hash("wonderland").encode(),
            "bob": fast_hash("builder").encode(),
        }
    )


# --- valid files ---------------------------------------------------------------------------


def test_an_empty_file_means_no_auth_and_no_tls(tmp_path):
    config = load_web_config(write_config(tmp_path, ""))
    assert not config.auth_enabled
    assert not config.tls_enabled
    assert config.ssl_context() is None
    assert config.check_basic_auth(None)
    assert dict(config.headers) == {}


def test_a_full_file_resolves_paths_relative_to_itself(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_self_signed(certs)
    make_self_signed(certs, "clients")
    alice_hash = fast_hash("wonderland")
    path = write_config(
        tmp_path,
        f"""
tls_server_config:
  cert_file: certs/server.crt
  key_file: certs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: certs/clients.crt
  min_version: TLS13
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
    Content-Security-Policy: ""
basic_auth_users:
  alice: {alice_hash}
""",
    )
    config = load_web_config(path)
    assert config.tls_cert_file == str(certs / "server.crt")
    assert config.tls_key_file == str(certs / "server.key")
    assert config.client_ca_file == str(certs / "clients.crt")
    assert config.client_auth_type == "RequireAndVerifyClientCert"
    assert dict(config.basic_auth_users) == {"alice": alice_hash.encode()}
    # A blank header value means "unset", as in exporter-toolkit.
    assert dict(config.headers) == {
        "X-Frame-Options": "deny",
        "X-Content-Type-Options": "nosniff",
        "Strict-Transport-Security": "max-age=31536000",
    }
    context = config.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert config.ssl_context() is not context  # fresh each call, so rotated files are read


def test_tls_defaults_follow_exporter_toolkit(tmp_path, tls_files):
    cert, key = tls_files
    config = load_web_config(
        write_config(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    )
    assert config.tls_enabled
    assert not config.auth_enabled
    context = config.ssl_context()
    assert context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


# --- invalid files: every message names the file and the problem ----------------------------

BAD_FILES = {
    "not yaml": ("basic_auth_users: [unclosed", "invalid YAML"),
    "not a mapping": ("- a\n- b\n", "the top level must be a mapping, not list"),
    "unknown top-level key": ("basic_auth_user:\n  a: b\n", "unknown key 'basic_auth_user'"),
    "rate limit": ("rate_limit:\n  burst: 1\n", "rate_limit: rate limiting is not supported"),
    "users not a mapping": (
        "basic_auth_users: [alice]\n",
        "basic_auth_users: must be a mapping of user",
    ),
    "plain password": ("basic_auth_users:\n  alice: secret123\n", "basic_auth_users.alice: not a"),
    "sha256 crypt": ("basic_auth_users:\n  alice: $5$salt$abc\n", "not a bcrypt hash"),
    "truncated bcrypt": (
        "basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ\n",
        "not a bcrypt hash",
    ),
    "bcrypt cost too low": (
        "basic_auth_users:\n  alice: $2y$03$" + "a" * 53 + "\n",
        "not a bcrypt hash",
    ),
    "numeric user": ("basic_auth_users:\n  123: x\n", "user name 123 must be a non-empty string"),
    "colon in user": ("basic_auth_users:\n  'a:b': x\n", "must not contain ':'"),
    "tls not a mapping": ("tls_server_config: yes\n", "tls_server_config must be a mapping"),
    "tls without key": ("tls_server_config:\n  cert_file: a.crt\n", "key_file: missing"),
    "tls without cert": ("tls_server_config:\n  min_version: TLS12\n", "cert_file: missing"),
    "unknown tls key": (
        "tls_server_config:\n  certfile: a\n",
        "unknown key 'certfile' in tls_server_config",
    ),
    "inline cert": ("tls_server_config:\n  cert: abc\n", "tls_server_config.cert: inline"),
    "san allow-list": (
        "tls_server_config:\n  client_allowed_sans: [a]\n",
        "client SAN allow-lists are not supported",
    ),
    "missing cert file": (
        "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n",
        "cert_file: cannot read {dir}/nowhere.crt: No such file or directory",
    ),
    "unknown http key": ("http_server_config:\n  http3: true\n", "unknown key 'http3'"),
    "http2 not a bool": ("http_server_config:\n  http2: maybe\n", "http2: must be true or false"),
    "header not allowed": (
        "http_server_config:\n  headers:\n    Server: nginx\n",
        "'Server' cannot be configured",
    ),
    "frame options value": (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "X-Frame-Options: 'allow' is not one of deny, sameorigin",
    ),
}


@pytest.mark.parametrize(("text", "problem"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_an_invalid_file_is_rejected_with_a_message_naming_it(tmp_path, text, problem):
    path = write_config(tmp_path, text)
    with pytest.raises(WebConfigError) as raised:
        load_web_config(path)
    message = str(raised.value)
    assert message.startswith(f"web config {path}: ")
    assert problem.format(dir=tmp_path) in message


def test_a_missing_file_is_reported(tmp_path):
    path = str(tmp_path / "absent.yml")
    with pytest.raises(
        WebConfigError, match=r"web config .*absent\.yml: cannot read file: No such"
    ):
        load_web_config(path)


def test_a_rejected_hash_is_not_echoed(tmp_path):
    path = write_config(tmp_path, "basic_auth_users:\n  alice: hunter2-plaintext\n")
    with pytest.raises(WebConfigError) as raised:
        load_web_config(path)
    assert "hunter2" not in str(raised.value)


TLS_PROBLEMS = {
    "unknown client auth": ("client_auth_type: Sometimes", "'Sometimes' is not one of"),
    "unverified client certs": (
        "client_auth_type: RequireAnyClientCert\n  client_ca_file: {ca}",
        "RequireAnyClientCert accepts unverified client certificates and is not supported",
    ),
    "ca without client auth": (
        "client_ca_file: {ca}",
        "client_ca_file is set but client_auth_type is NoClientCert",
    ),
    "client auth without ca": (
        "client_auth_type: RequireAndVerifyClientCert",
        "client_auth_type RequireAndVerifyClientCert needs client_ca_file",
    ),
    "unknown tls version": ("min_version: TLS14", "min_version: 'TLS14' is not one of"),
    "min above max": (
        "min_version: TLS13\n  max_version: TLS12",
        "min_version TLS13 is above max_version TLS12",
    ),
    "prefer server not a bool": (
        "prefer_server_cipher_suites: sometimes",
        "prefer_server_cipher_suites: must be true or false",
    ),
}


@pytest.mark.parametrize(("extra", "problem"), TLS_PROBLEMS.values(), ids=TLS_PROBLEMS.keys())
def test_an_invalid_tls_section_is_rejected(tmp_path, tls_files, extra, problem):
    cert, key = tls_files
    text = f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  {extra}\n"
    path = write_config(tmp_path, text.format(ca=cert))
    with pytest.raises(WebConfigError) as raised:
        load_web_config(path)
    assert str(raised.value).startswith(f"web config {path}: tls_server_config")
    assert problem in str(raised.value)


def test_a_key_that_does_not_match_the_certificate_is_rejected(tmp_path):
    cert, _ = make_self_signed(tmp_path, "one")
    _, other_key = make_self_signed(tmp_path, "two")
    path = write_config(
        tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {other_key}\n"
    )
    with pytest.raises(WebConfigError, match=r"cannot load the certificate, key or CA: .*mismatch"):
        load_web_config(path)


def test_an_encrypted_key_is_rejected_instead_of_prompting(tmp_path, tls_files):
    cert, plain_key = tls_files
    key = tmp_path / "encrypted.key"
    subprocess.run(
        [OPENSSL, "pkey", "-in", str(plain_key), "-out", str(key), "-aes256", "-passout", "pass:x"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    assert b"ENCRYPTED" in key.read_bytes()
    path = write_config(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    with pytest.raises(WebConfigError, match="the key file is encrypted"):
        load_web_config(path)


# --- basic auth ----------------------------------------------------------------------------


def test_right_credentials_pass_and_wrong_ones_fail(users):
    assert users.check_basic_auth(basic("alice", "wonderland"))
    assert users.check_basic_auth(basic("bob", "builder"))
    assert not users.check_basic_auth(basic("alice", "builder"))
    assert not users.check_basic_auth(basic("alice", ""))
    assert not users.check_basic_auth(basic("carol", "wonderland"))
    assert not users.check_basic_auth(None)
    assert not users.check_basic_auth("")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + base64.b64encode(b"alice:wonderland").decode(),
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"alice-wonderland").decode(),  # no colon
        "Basic " + base64.b64encode(b"\xff\xfe:wonderland").decode(),  # user not UTF-8
        "Basic " + base64.b64encode(b"alice:wonderland").decode() + "é",
    ],
)
def test_malformed_headers_fail_without_paying_bcrypt(users, header):
    runner = CountingRunner()
    assert not users.check_basic_auth(header, run_blocking=runner)
    assert runner.hashes == []


def test_the_scheme_is_case_insensitive(users):
    header = basic("alice", "wonderland").replace("Basic", "bAsIc")
    assert users.check_basic_auth(header)


def test_a_success_is_cached_and_a_failure_never_is():
    config = WebConfig(basic_auth_users={"alice": fast_hash("wonderland").encode()})
    runner = CountingRunner()
    for _ in range(3):
        assert config.check_basic_auth(basic("alice", "wonderland"), run_blocking=runner)
    assert len(runner.hashes) == 1
    for _ in range(3):
        assert not config.check_basic_auth(basic("alice", "wrong"), run_blocking=runner)
    assert len(runner.hashes) == 4


def test_an_unknown_user_pays_bcrypt_like_a_known_one(users):
    """So response timing does not tell which user names exist."""
    runner = CountingRunner()
    assert not users.check_basic_auth(basic("mallory", "wonderland"), run_blocking=runner)
    assert len(runner.hashes) == 1
    assert runner.hashes[0] in users.basic_auth_users.values()


def test_a_password_longer_than_bcrypt_reads_is_checked_on_its_first_72_bytes():
    long_password = "p" * 72
    config = WebConfig(basic_auth_users={"alice": fast_hash(long_password).encode()})
    assert config.check_basic_auth(basic("alice", long_password + "ignored-by-bcrypt"))
    assert not config.check_basic_auth(basic("alice", "p" * 71))


def test_the_success_cache_is_bounded():
    count = AUTH_CACHE_SIZE + 5
    config = WebConfig(
        basic_auth_users={f"user{i}": fast_hash(f"pw{i}").encode() for i in range(count)}
    )
    for i in range(count):
        assert config.check_basic_auth(basic(f"user{i}", f"pw{i}"))
        assert len(config._auth_cache) <= AUTH_CACHE_SIZE
    # Still correct after the cache overflowed.
    assert config.check_basic_auth(basic("user0", "pw0"))
    assert not config.check_basic_auth(basic("user0", "pw1"))


def test_the_repr_does_not_show_password_hashes(users):
    assert "$2b$" not in repr(users)
