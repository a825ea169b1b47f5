"""The environment's own certificate authority and the controller's certificate.

The CA (RSA, 10 years) is made once with the other secrets and kept in secrets.yaml
(0600). The controller's certificate names `*.<domain>`, `<domain>` and the
controller's IP; it is issued at render time, and identically for the same names:
its serial comes from the names, its validity from the CA, and RSA PKCS#1 v1.5
signatures are deterministic, so `plan` twice stays byte-identical.

Users and clients trust the CA through clouds.yaml (`cacert`) and the openrc files
(`OS_CACERT`); `ca.pem` sits in the state folder.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10


def _pem_key(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make(env: str) -> dict[str, str]:
    """A fresh CA and the key of the controller's certificate (PEM strings)."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"osception {env} CA")])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    ca = (x509.CertificateBuilder()
          .subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    return {"ca_cert": ca.public_bytes(serialization.Encoding.PEM).decode(),
            "ca_key": _pem_key(ca_key), "key": _pem_key(server_key)}


def problem(tls: object) -> str | None:
    """Why a stored `tls` entry is unusable, or None."""
    if not isinstance(tls, dict) or set(tls) != {"ca_cert", "ca_key", "key"}:
        return "must be a mapping of ca_cert, ca_key and key"
    try:
        ca = x509.load_pem_x509_certificate(tls["ca_cert"].encode())
        ca_key = serialization.load_pem_private_key(tls["ca_key"].encode(), None)
        serialization.load_pem_private_key(tls["key"].encode(), None)
    except (ValueError, TypeError, AttributeError):
        return "must hold PEM certificate and keys"
    if ca.public_key().public_numbers() != ca_key.public_key().public_numbers():
        return "ca_key does not match ca_cert"
    return None


def server_cert(tls: dict[str, str], domain: str, ip: str) -> str:
    """The controller's certificate (PEM, then the CA's) for *.domain, domain and ip."""
    ca = x509.load_pem_x509_certificate(tls["ca_cert"].encode())
    ca_key = serialization.load_pem_private_key(tls["ca_key"].encode(), None)
    key = serialization.load_pem_private_key(tls["key"].encode(), None)
    names = [f"*.{domain}", domain]
    serial = int.from_bytes(hashlib.sha256("\n".join([*names, ip]).encode()).digest()[:16], "big") >> 1
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(ca.not_valid_before_utc)
            .not_valid_after(ca.not_valid_after_utc)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode() + tls["ca_cert"]
