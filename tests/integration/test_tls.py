"""TLS and mutual TLS on the real gRPC server, with certificates made here.

A test CA signs a server certificate for 127.0.0.1 / localhost and a client
certificate; a second, unrelated CA signs an impostor client certificate. Servers
run in-process (ledger.api.server.start on port 0) against the PostgreSQL test
database. Proves: a TLS call works and a plaintext client cannot talk to a TLS
server; with a client CA (mutual TLS) a client without a certificate and one
with a certificate from another CA are refused, one signed by the CA works.
Also the option checks of `loyalty-ledger serve` and of the SDK.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from dataclasses import dataclass

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.api import server as grpc_server
from ledger.api import tls
from clients import marketing
from ledger.cli import main as cli_main
from ledger.domain.kinds import Role
from loyalty.client import AsyncLedgerClient, LedgerApiError, LedgerClient, RetryPolicy
from loyalty.v1 import programs_pb2, programs_pb2_grpc

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def make_ca(common_name: str):
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca, common_name: str, *, server: bool) -> Pem:
    ca_cert, ca_key = ca
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class Pki:
    ca: bytes
    server: Pem
    client: Pem
    other_ca: bytes
    impostor: Pem
    paths: dict[str, str]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    ca = make_ca("loyalty test CA")
    other = make_ca("some other CA")
    ca_pem = ca[0].public_bytes(serialization.Encoding.PEM)
    other_pem = other[0].public_bytes(serialization.Encoding.PEM)
    server = issue(ca, "localhost", server=True)
    folder = tmp_path_factory.mktemp("pki")
    paths = {}
    for name, data in {"ca.pem": ca_pem, "server.pem": server.cert, "server.key": server.key}.items():
        (folder / name).write_bytes(data)
        paths[name] = str(folder / name)
    return Pki(
        ca=ca_pem,
        server=server,
        client=issue(ca, "pos-terminal-1", server=False),
        other_ca=other_pem,
        impostor=issue(other, "pos-terminal-1", server=False),
        paths=paths,
    )


def _start(postgres_backend, config: tls.TlsConfig):
    return grpc_server.start(postgres_backend.db, "127.0.0.1:0", max_workers=4, tls=config)


@pytest.fixture(scope="module")
def tls_server(postgres_backend, pki):
    running = _start(postgres_backend, tls.TlsConfig(pki.paths["server.pem"], pki.paths["server.key"]))
    yield f"127.0.0.1:{running.port}"
    running.stop(1)


@pytest.fixture(scope="module")
def mtls_server(postgres_backend, pki):
    config = tls.TlsConfig(pki.paths["server.pem"], pki.paths["server.key"], pki.paths["ca.pem"])
    running = _start(postgres_backend, config)
    yield f"127.0.0.1:{running.port}"
    running.stop(1)


def _get_program(channel: grpc.Channel, key: str) -> programs_pb2.GetProgramResponse:
    stub = programs_pb2_grpc.ProgramsStub(channel)
    return stub.GetProgram(programs_pb2.GetProgramRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=5)


def _refused(channel: grpc.Channel, key: str) -> grpc.StatusCode:
    with channel, pytest.raises(grpc.RpcError) as caught:
        _get_program(channel, key)
    return caught.value.code()


# -- TLS ------------------------------------------------------------------------------


def test_tls_call_works(tls_server, pki, pg_program):
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca)
    with grpc.secure_channel(tls_server, credentials) as channel:
        assert _get_program(channel, pg_program.admin_key).program.program_id == pg_program.program_id


def test_sdk_talks_tls(tls_server, pki, pg_program):
    with LedgerClient(tls_server, pg_program.admin_key, root_certificates=pki.ca) as client:
        assert client.get_program().program.program_id == pg_program.program_id
        assert client.enroll_member(member_id=f"m-tls-{pg_program.program_id}").created


def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server, pg_program):
    assert _refused(grpc.insecure_channel(tls_server), pg_program.admin_key) == grpc.StatusCode.UNAVAILABLE


def test_client_that_does_not_trust_the_server_ca_is_refused(tls_server, pki, pg_program):
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.other_ca)
    channel = grpc.secure_channel(tls_server, credentials)
    assert _refused(channel, pg_program.admin_key) == grpc.StatusCode.UNAVAILABLE


def test_tls_server_still_checks_the_api_key(tls_server, pki):
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca)
    channel = grpc.secure_channel(tls_server, credentials)
    assert _refused(channel, "lk_000000000000_not-a-key") == grpc.StatusCode.UNAUTHENTICATED


# -- mutual TLS -------------------------------------------------------------------------


def test_mtls_client_with_a_certificate_of_the_ca_works(mtls_server, pki, pg_program):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca, private_key=pki.client.key, certificate_chain=pki.client.cert
    )
    with grpc.secure_channel(mtls_server, credentials) as channel:
        assert _get_program(channel, pg_program.admin_key).program.program_id == pg_program.program_id


def test_sdk_talks_mutual_tls(mtls_server, pki, pg_program):
    with LedgerClient(
        mtls_server,
        pg_program.admin_key,
        root_certificates=pki.ca,
        private_key=pki.client.key,
        certificate_chain=pki.client.cert,
    ) as client:
        assert client.get_program().program.program_id == pg_program.program_id


def test_asyncio_sdk_talks_mutual_tls(mtls_server, pki, pg_program):
    async def call() -> str:
        async with AsyncLedgerClient(
            mtls_server,
            pg_program.admin_key,
            root_certificates=pki.ca,
            private_key=pki.client.key,
            certificate_chain=pki.client.cert,
        ) as client:
            return (await client.get_program()).program.program_id

    assert asyncio.run(call()) == pg_program.program_id


def test_the_marketing_command_line_talks_tls_and_mutual_tls(tls_server, mtls_server, pki, pg_program, tmp_path, capsys):
    client_cert, client_key = tmp_path / "client.pem", tmp_path / "client.key"
    client_cert.write_bytes(pki.client.cert)
    client_key.write_bytes(pki.client.key)
    key = pg_program.key(Role.MARKETING)
    ca = ["--ca-cert", pki.paths["ca.pem"]]
    mutual = [*ca, "--client-cert", str(client_cert), "--client-key", str(client_key)]
    assert marketing.main(["--target", tls_server, "--key", key, *ca, "referrals"]) == 0
    assert marketing.main(["--target", mtls_server, "--key", key, *mutual, "referrals"]) == 0
    assert capsys.readouterr().out.count("attributed") == 2
    assert marketing.main(["--target", mtls_server, "--key", key, *ca, "referrals"]) == 1  # no client certificate
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_mtls_client_without_a_certificate_is_refused(mtls_server, pki, pg_program):
    channel = grpc.secure_channel(mtls_server, grpc.ssl_channel_credentials(root_certificates=pki.ca))
    assert _refused(channel, pg_program.admin_key) == grpc.StatusCode.UNAVAILABLE
    with LedgerClient(mtls_server, pg_program.admin_key, root_certificates=pki.ca, policy=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(LedgerApiError) as caught:
            client.get_program()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_mtls_client_with_a_certificate_of_another_ca_is_refused(mtls_server, pki, pg_program):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca, private_key=pki.impostor.key, certificate_chain=pki.impostor.cert
    )
    channel = grpc.secure_channel(mtls_server, credentials)
    assert _refused(channel, pg_program.admin_key) == grpc.StatusCode.UNAVAILABLE


def test_mtls_plaintext_client_is_refused(mtls_server, pg_program):
    assert _refused(grpc.insecure_channel(mtls_server), pg_program.admin_key) == grpc.StatusCode.UNAVAILABLE


# -- configuration -----------------------------------------------------------------------


def test_tls_settings_go_together(pki):
    assert tls.from_settings(None, None, None) is None
    assert tls.from_settings("", "", "") is None
    config = tls.from_settings(pki.paths["server.pem"], pki.paths["server.key"], pki.paths["ca.pem"])
    assert config.mutual and config.server_credentials() is not None
    assert not tls.from_settings(pki.paths["server.pem"], pki.paths["server.key"], None).mutual
    for cert, key, client_ca in [("a.pem", None, None), (None, "a.key", None), (None, None, "ca.pem")]:
        with pytest.raises(ValueError):
            tls.from_settings(cert, key, client_ca)


def test_tls_settings_come_from_the_environment(monkeypatch, pki):
    monkeypatch.setenv("LOYALTY_TLS_CERT", pki.paths["server.pem"])
    monkeypatch.setenv("LOYALTY_TLS_KEY", pki.paths["server.key"])
    monkeypatch.delenv("LOYALTY_TLS_CLIENT_CA", raising=False)
    assert tls.from_environment() == tls.TlsConfig(pki.paths["server.pem"], pki.paths["server.key"])


def test_unreadable_or_non_pem_files_fail_at_start(postgres_backend, pki, tmp_path):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    for config in [
        tls.TlsConfig(str(tmp_path / "missing.pem"), pki.paths["server.key"]),
        tls.TlsConfig(str(not_pem), pki.paths["server.key"]),
        tls.TlsConfig(pki.paths["server.pem"], pki.paths["server.key"], str(not_pem)),
    ]:
        with pytest.raises(ValueError):
            _start(postgres_backend, config)


def test_serve_refuses_half_a_tls_configuration(capsys, pki, tmp_path):
    assert cli_main(["serve", "--tls-cert", pki.paths["server.pem"]]) == 2
    assert "--tls-key" in capsys.readouterr().err
    assert cli_main(["serve", "--tls-client-ca", pki.paths["ca.pem"]]) == 2
    assert cli_main(["serve", "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", pki.paths["server.key"]]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_sdk_checks_its_certificate_options():
    with pytest.raises(ValueError):
        LedgerClient("127.0.0.1:1", "lk_000000000000_x", private_key=b"key-without-chain")
    with pytest.raises(ValueError):
        LedgerClient("127.0.0.1:1", "lk_000000000000_x", root_certificates=b"ca", tls=False)
