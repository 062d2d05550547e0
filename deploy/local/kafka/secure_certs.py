"""Certificates for the local secure Kafka broker (deploy/local/kafka-secure.sh), made with `cryptography`.

    python secure_certs.py DIR USER...

writes, under DIR (private keys readable by the owner only):
  ca.crt                   the CA every client trusts (Strimzi: <kafka>-cluster-ca-cert, key ca.crt)
  broker.pem               the broker's PKCS#8 key and certificate chain (Kafka's PEM keystore),
                           for 127.0.0.1 and localhost, usable as server and as client (controller link)
  users/<USER>/user.crt    a client certificate with subject CN=<USER> (principal User:CN=<USER>, as
  users/<USER>/user.key    Strimzi's mTLS users), its key, and ca.crt: the files of Strimzi's user Secret
  users/<USER>/ca.crt
  untrusted/{ca.crt,user.crt,user.key}  a second CA and a client certificate (CN=untrusted) it signed,
                           which the broker does not trust: for tests of what must fail
Nothing here is meant to leave the machine; every run makes new keys.
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_CN = "careloop-kafka-broker"
VALID = datetime.timedelta(days=30)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8 ("BEGIN PRIVATE KEY"): what Kafka's PEM keystore reads without ssl.key.password.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    cn: str,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600 if private else 0o644)


def _client_files(directory: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], cn: str) -> None:
    key, cert = _leaf(ca, cn, [ExtendedKeyUsageOID.CLIENT_AUTH])
    _write(directory / "user.crt", _pem_cert(cert))
    _write(directory / "user.key", _pem_key(key), private=True)
    _write(directory / "ca.crt", _pem_cert(ca[1]))


def make(directory: Path, users: list[str]) -> None:
    ca = _ca("careloop-local-kafka-ca")
    _write(directory / "ca.crt", _pem_cert(ca[1]))
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    key, cert = _leaf(ca, BROKER_CN, usages, sans)
    _write(directory / "broker.pem", _pem_key(key) + _pem_cert(cert), private=True)
    for user in users:
        _client_files(directory / "users" / user, ca, user)
    _client_files(directory / "untrusted", _ca("careloop-untrusted-ca"), "untrusted")


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    make(Path(argv[0]), argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
