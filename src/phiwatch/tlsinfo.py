"""Certificate facts from a TLS connection: version, subject, issuer, validity, self-signed."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .models import TlsFacts
from .peertext import peer_text

if TYPE_CHECKING:
    from cryptography import x509


def _alt_names(cert: x509.Certificate) -> list[str]:
    """Subject alternative names, each through the peer-text gate (a host name can be a person's)."""
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError, TypeError):
        return []
    kept: list[str] = []
    for name in list(names)[:8]:
        text = peer_text(str(name.value)[:256])
        if text is not None:
            kept.append(text)
    return kept


def tls_facts(ssl_object: ssl.SSLObject | ssl.SSLSocket, now: datetime | None = None) -> TlsFacts:
    cipher = ssl_object.cipher()
    facts = TlsFacts(version=ssl_object.version(), cipher=cipher[0] if cipher else None)
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return facts
    from cryptography import x509  # only once a TLS peer has sent a certificate

    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        not_before = cert.not_valid_before_utc
        not_after = cert.not_valid_after_utc
    except (ValueError, TypeError):
        return facts
    moment = now or datetime.now(UTC)
    facts.subject = peer_text(subject)
    facts.issuer = peer_text(issuer)
    facts.alt_names = _alt_names(cert)[:8]
    facts.not_before = not_before
    facts.not_after = not_after
    facts.expired = not (not_before <= moment <= not_after)
    facts.self_signed = cert.subject == cert.issuer
    return facts
