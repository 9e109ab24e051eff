"""End to end: the exporter as a child process with ``--web.config.file`` (basic auth
with a bcrypt hash, and TLS with a self-signed certificate) against the simulator.
/metrics needs credentials over HTTPS; the probes stay open (kubelets send none);
plain HTTP gets nowhere; the credentials never reach the log."""

from __future__ import annotations

import base64
import secrets

import bcrypt
import requests

from tests.reliability.child import FAST_FLAGS, simulator_env
from tests.reliability.test_secrets import RecordingSimulator, assert_no_secrets
from tests.support import ExporterProcess, sample_value, wait_for

USER = "prometheus"


def test_metrics_need_basic_auth_over_tls_and_probes_stay_open(tmp_path, tls_files):
    password = f"pw-{secrets.token_hex(12)}"
    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    cert, _ = tls_files
    config = tmp_path / "web-config.yml"
    config.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                      f"basic_auth_users:\n  {USER}: {password_hash}\n")
    api_key = f"KEY-{secrets.token_hex(16)}"
    with RecordingSimulator(api_key) as recording:
        env = simulator_env(recording.sim, api_key)
        with ExporterProcess("--log.level", "debug", "--web.config.file", str(config),
                             *FAST_FLAGS, env=env, output=tmp_path / "exporter.log",
                             scheme="https", verify=str(cert)) as child:
            def scrape(auth=None) -> requests.Response:
                return child.get("/metrics", auth=auth)

            anonymous = scrape()
            assert anonymous.status_code == 401
            assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
            assert "cryptomus_" not in anonymous.text
            assert scrape((USER, "wrong")).status_code == 401
            assert scrape(("someone", password)).status_code == 401
            assert child.get("/").status_code == 401
            wait_for(lambda: sample_value(scrape((USER, password)).text,
                                          "cryptomus_websocket_connected") == 1,
                     what="an authenticated scrape showing the connection")
            wait_for(lambda: child.get("/readyz").status_code == 200, what="ready")
            assert child.get("/healthz").status_code == 200
            for insecure in ("http", "https"):  # plain HTTP, and TLS without trusting it
                try:
                    answer = requests.get(f"{insecure}://127.0.0.1:{child.port}/metrics",
                                          auth=(USER, password), timeout=5)
                except requests.exceptions.ConnectionError:
                    continue
                raise AssertionError(f"{insecure} answered {answer.status_code}")
            assert child.stop() == 0
        output = child.output()
    credentials = base64.b64encode(f"{USER}:{password}".encode()).decode()
    assert_no_secrets(output, [password, credentials, api_key, *recording.issued], "the log")
