"""A throw-away PKI for the tests of `tls:` (a certificate of the user's own): a root
CA, an intermediate and a server certificate, as a public CA would issue them."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DOMAIN = "cloud.example.com"
NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer: str, issuer_key, *, ca: bool, names=(), days=(-1, 90)):
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW + datetime.timedelta(days=days[0]))
         .not_valid_after(NOW + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        b = (b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return b.sign(issuer_key, hashes.SHA256())


def pem(*certs) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


@dataclass
class Pki:
    root: x509.Certificate
    root_key: object
    intermediate: x509.Certificate
    intermediate_key: object
    leaf: x509.Certificate
    key: object

    def leaf_for(self, names, days=(-1, 90), key=None):
        return _cert(names[0], key or self.key, "Example Intermediate", self.intermediate_key,
                     ca=False, names=names, days=days)

    def write(self, folder: Path, leaf=None, chain=None) -> dict[str, Path]:
        """fullchain.pem (leaf, intermediate), key.pem and ca.pem (the root) in folder."""
        paths = {"certificate": folder / "fullchain.pem", "key": folder / "key.pem", "ca": folder / "ca.pem"}
        paths["certificate"].write_text(pem(*(chain or [leaf or self.leaf, self.intermediate])))
        paths["key"].write_text(key_pem(self.key))
        paths["ca"].write_text(pem(self.root))
        return paths


def make(domain: str = DOMAIN) -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Example Root", root_key, "Example Root", root_key, ca=True, days=(-10, 3650))
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("Example Intermediate", inter_key, "Example Root", root_key, ca=True, days=(-10, 365))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(f"*.{domain}", key, "Example Intermediate", inter_key, ca=False, names=[f"*.{domain}"])
    return Pki(root, root_key, inter, inter_key, leaf, key)


def handshake(chain: str, key: str, name: str, cadata: str | None, tmp_path, strict: bool = False) -> str:
    """Serve chain+key on 127.0.0.1 with Python's ssl (OpenSSL); connect as a client
    verifying `name` against cadata. The TLS version, or the verification error.
    strict: OpenSSL's X509 strict checks, as Python 3.13's default context sets them."""
    (tmp_path / "srv-chain.pem").write_text(chain)
    (tmp_path / "srv-key.pem").write_text(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "srv-chain.pem", tmp_path / "srv-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = ssl.create_default_context(cadata=cadata) if cadata else ssl.create_default_context()
    if strict:
        client.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        with socket.create_connection(listener.getsockname()) as raw, \
                client.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(b"x")
            return s.version()
    except ssl.SSLCertVerificationError as e:
        return f"refused: {e.verify_message}"
    finally:
        t.join(5)
        listener.close()
