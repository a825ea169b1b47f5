"""The environment's own certificate authority and the controller's certificate.

The CA (RSA, 10 years) is made once with the other secrets and kept in secrets.yaml
(0600). The controller's certificate names `*.<domain>`, `<domain>` and the
controller's IP; it is issued at render time, and identically for the same names:
its serial comes from the names, its validity from the CA, and RSA PKCS#1 v1.5
signatures are deterministic, so `plan` twice stays byte-identical.

Users and clients trust the CA through clouds.yaml (`cacert`) and the openrc files
(`OS_CACERT`); `ca.pem` sits in the state folder.

A user may bring their own certificate instead (`tls:` in osception.yaml, e.g. from a
public CA): `ingress` picks what Traefik serves and what clients verify it with, and
`own` reads and checks the user's files, each problem one line naming the key and
the file. The user's key is read at each plan and goes only into the osception-tls
Secret; the environment's CA stays in secrets.yaml for what it signs inside.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import state
from .config import ConfigError, Tls

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
          # RFC 5280's key identifiers: strict verifiers (Python 3.13's default context,
          # VERIFY_X509_STRICT) refuse a CA without one.
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    return {"ca_cert": ca.public_bytes(serialization.Encoding.PEM).decode(),
            "ca_key": _pem_key(ca_key), "key": _pem_key(server_key)}


# What the environment's CA and the controller's key may be: what `make` makes (RSA
# 2048, P-256) or stronger. Weaker is what a hand-edited or planted file would hold.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_HASHES = (hashes.MD5, hashes.SHA1)


def _weak(key) -> str | None:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA key of {key.key_size} bits (at least {MIN_RSA_BITS})" if key.key_size < MIN_RSA_BITS else None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key of {key.curve.key_size} bits (at least {MIN_EC_BITS})" \
            if key.curve.key_size < MIN_EC_BITS else None
    return "not an RSA or EC key"


def problem(tls: object, now: datetime.datetime | None = None) -> str | None:
    """Why a stored `tls` entry is unusable, or None: not PEM, a CA that is not a CA,
    expired or not yet valid, a weak key or signature."""
    if not isinstance(tls, dict) or set(tls) != {"ca_cert", "ca_key", "key"}:
        return "must be a mapping of ca_cert, ca_key and key"
    try:
        ca = x509.load_pem_x509_certificate(tls["ca_cert"].encode())
        ca_key = serialization.load_pem_private_key(tls["ca_key"].encode(), None)
        key = serialization.load_pem_private_key(tls["key"].encode(), None)
    except (ValueError, TypeError, AttributeError, UnsupportedAlgorithm):
        return "must hold PEM certificate and keys"
    if _public(ca.public_key()) != _public(ca_key.public_key()):
        return "ca_key does not match ca_cert"
    for name, k in (("ca_key", ca_key), ("key", key)):
        if weak := _weak(k):
            return f"{name} is weak: {weak}"
    if isinstance(ca.signature_hash_algorithm, WEAK_HASHES):
        return f"ca_cert is signed with {ca.signature_hash_algorithm.name}, a broken hash"
    try:
        is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        return "ca_cert is not a CA certificate"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if ca.not_valid_after_utc < now:
        return f"ca_cert expired on {_when(ca.not_valid_after_utc)}"
    if ca.not_valid_before_utc > now:
        return f"ca_cert is not valid before {_when(ca.not_valid_before_utc)}"
    return None


def strict_note(tls: dict[str, str]) -> str | None:
    """Why strict verifiers will refuse the environment's CA, or None: one made before
    osception gave its CAs a subject key identifier. The CA is a secret of the
    environment, so it is only replaced when the user asks."""
    ca = x509.load_pem_x509_certificate(tls["ca_cert"].encode())
    try:
        ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return None
    except x509.ExtensionNotFound:
        return ("the environment's CA has no subject key identifier: Python 3.13 clients "
                "(Debian 13 nodes with node_source pypi) refuse it; a new CA: "
                "`osception plan --regenerate-secrets` (every secret), then `osception up`")


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
            # Which CA key signed it (strict verifiers, Python 3.13's among them, refuse a
            # certificate without it): from the CA's public key, which is what its own
            # identifier is, if it has one (CAs made before they got one have none).
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode() + tls["ca_cert"]


@dataclass(frozen=True)
class Ingress:
    """What Traefik serves on every Ingress, and what clients verify it with."""

    chain: str  # PEM: the certificate, then its intermediates
    key: str  # PEM
    ca: str | None  # PEM of the CA(s) to verify it with; None: the system's CAs


def ingress(own_tls: Tls | None, env_tls: dict[str, str], env_cert: str) -> Ingress:
    """The user's certificate when osception.yaml has `tls:`, else the controller's
    certificate from the environment's CA (`env_cert`: server_cert())."""
    if own_tls is not None:
        return own(own_tls)
    return Ingress(env_cert, env_tls["key"], env_tls["ca_cert"])


MAX_PEM = 1 << 20  # bytes: a chain is a few KiB


def _read(key: str, path: Path) -> bytes:
    """A file of `tls:`: a regular file of the user's that only they can write (a FIFO
    must not block the command; whoever could write it could choose what is served)."""
    try:
        return state.read_input(path, MAX_PEM)
    except state.StateError as e:
        raise ConfigError(f"tls.{key}: {e}{'; not a PEM file' if 'larger than' in str(e) else ''}") from None


def _certificates(key: str, path: Path) -> list[x509.Certificate]:
    data = _read(key, path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError(f"tls.{key}: {path}: not PEM certificates (-----BEGIN CERTIFICATE-----)")
    return certs


def _public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _when(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def own(t: Tls, now: datetime.datetime | None = None) -> Ingress:
    """Read and check the user's certificate, key and CA: each problem is one line
    naming the key and the file; no file content is ever shown."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    chain = _certificates("certificate", t.certificate)
    data = _read("key", t.key)
    try:
        key = serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"tls.key: {t.key}: not an unencrypted PEM private key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise ConfigError(f"tls.key: {t.key}: not an RSA, ECDSA or Ed25519 key (what Traefik serves)")
    if _public(key.public_key()) != _public(chain[0].public_key()):
        raise ConfigError(f"tls.key: {t.key}: does not match the first certificate of {t.certificate}")
    for i, cert in enumerate(chain, 1):
        if cert.not_valid_before_utc > now:
            raise ConfigError(f"tls.certificate: {t.certificate}: certificate {i} is not valid "
                              f"before {_when(cert.not_valid_before_utc)}")
        if cert.not_valid_after_utc < now:
            raise ConfigError(f"tls.certificate: {t.certificate}: certificate {i} expired "
                              f"on {_when(cert.not_valid_after_utc)}")
        if i < len(chain) and not _issued_by(cert, chain[i]):
            raise ConfigError(f"tls.certificate: {t.certificate}: certificate {i + 1} did not issue "
                              f"certificate {i}; give the certificate, then its intermediates in order")
    ca = None
    if t.ca is not None:
        cas = _certificates("ca", t.ca)
        last = chain[-1]
        if not any(last == c or _issued_by(last, c) for c in cas):
            raise ConfigError(f"tls.ca: {t.ca}: did not issue {t.certificate}")
        ca = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in cas)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    return Ingress(pem, _pem_key(key), ca)


def client_ca(own_tls: Tls | None, env_tls: dict[str, str]) -> str | None:
    """What clients (clouds.yaml, openrc) verify the endpoints with: the environment's
    CA, or the user's `tls.ca`, or None for the system's CAs."""
    if own_tls is None:
        return env_tls["ca_cert"]
    if own_tls.ca is None:
        return None
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in _certificates("ca", own_tls.ca))


def _covers(pattern: str, host: str) -> bool:
    """RFC 6125: a wildcard stands for exactly one whole left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower()
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def check_names(t: Tls, chain: str, hosts: list[str]) -> None:
    """Every host the endpoints are reached by must be a DNS name of the certificate."""
    cert = x509.load_pem_x509_certificate(chain.encode())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    for host in hosts:
        if not any(_covers(n, host) for n in names):
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "") or "no DNS name"
            raise ConfigError(f"tls.certificate: {t.certificate}: does not name {host} "
                              f"(it names {shown}); it needs *.{host.split('.', 1)[1]} or every endpoint's name")
