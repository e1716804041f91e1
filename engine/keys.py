"""Signing keys: the server's Ed25519 key, which signs every audit event,
journal entry, seal and checkpoint, and the public keys that check them.

The private key lives in a key file (mode 0600) and never in the database.
Keys rotate: every signature names its key by :attr:`Signer.key_id`, and a
:class:`Keyring` holds every public key the operator trusts — the current
key file's, and those of earlier keys kept in the key history file beside it
(:func:`history_path`) — so old signatures keep verifying after a new key
is set. The database lists the public keys it has seen, for people to read;
verification never trusts that list, since whoever can write the database
could add a key of their own to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from procedures.errors import TinhgonError
from procedures.messages import t


class KeyFileError(TinhgonError):
    """A signing or verification key could not be read or is not an Ed25519 key.

    ``source`` is the key file's path, or a description of where a PEM given
    as text came from.
    """

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")


def key_id_of(key: Ed25519PublicKey) -> str:
    """A public key's name in signatures: the first 16 hex digits of the
    SHA-256 of its 32 raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """The server's Ed25519 private key, which signs what the audit keeps."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = key_id_of(key.public_key())

    @classmethod
    def generate(cls) -> Signer:
        """A fresh key held only in memory (tests, one-off tools)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Signer:
        """The key in the PEM file at ``path`` (unencrypted PKCS #8).

        Raises:
            KeyFileError: the file cannot be read, or does not hold an
                unencrypted Ed25519 private key. The message names the file.
        """
        source = os.fspath(path)
        try:
            pem = Path(source).read_bytes()
        except OSError as error:
            raise KeyFileError(source, t("cannot read the signing key: {reason}", reason=error.strerror or str(error))) from None
        return cls(_private_key(pem, source))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Signer:
        """The key in ``path``, created (mode 0600, parents too) when missing.

        An existing file is never overwritten. Several processes starting at
        once for the first time all end up with the same key: each writes its
        own key to a private temporary file and hard-links it into place,
        which succeeds for exactly one of them; the others get
        ``FileExistsError`` and read the winner's key. Linking a complete
        file, rather than creating ``path`` with ``O_EXCL`` and then writing
        to it, means no process can ever read a half-written key.

        Raises:
            KeyFileError: the file exists but cannot be read or is not an
                Ed25519 private key, or it cannot be created (the message
                names the file and the reason).
        """
        source = os.fspath(path)
        try:
            return cls.load(source)
        except KeyFileError:
            if os.path.lexists(source):
                # Either another process has just linked its (complete) key
                # into place, or the file is bad: a second read tells which,
                # and reports a bad file itself.
                return cls.load(source)
        target = Path(source)
        signer = cls.generate()
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _install(target, signer.private_pem())
        except FileExistsError:
            return cls.load(source)
        except OSError as error:
            raise KeyFileError(
                source, t("cannot create the signing key: {reason}", reason=error.strerror or str(error))
            ) from None
        return signer

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS #8 PEM, for writing the key file only."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> str:
        """The public half as SubjectPublicKeyInfo PEM, safe to store or publish."""
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def verifier(self) -> Verifier:
        """A verifier for this key's signatures."""
        return Verifier(self._key.public_key())

    def sign(self, hash_hex: str) -> str:
        """The base64 signature of an event hash's raw bytes.

        Raises:
            ValueError: ``hash_hex`` is not hex.
        """
        return base64.b64encode(self._key.sign(bytes.fromhex(hash_hex))).decode("ascii")


def _install(target: Path, pem: bytes) -> None:
    # The temporary name is unique per process, and O_EXCL makes sure we
    # never write into a file someone else (or a symlink) put there.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            # The umask can only take bits away; make the mode exact anyway.
            os.fchmod(descriptor, 0o600)
            remaining = memoryview(pem)
            while remaining:
                remaining = remaining[os.write(descriptor, remaining) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.link(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    # Without this a crash right after creating the key could lose the
    # directory entry while the first events were already signed with it.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise KeyFileError(
            source, t("the private key is encrypted; tinhgon needs an unencrypted PEM key file (protect it with mode 0600)")
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(source, t("not a PEM private key")) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(source, t("not an Ed25519 key ({type})", type=type(key).__name__))
    return key


class Verifier:
    """Checks signatures with one public key."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self.key_id = key_id_of(key)

    @classmethod
    def from_pem(cls, pem: str | bytes, source: str | None = None) -> Verifier:
        """A verifier from a SubjectPublicKeyInfo PEM, e.g. one an operator gives.

        Raises:
            KeyFileError: ``pem`` is not an Ed25519 public key; the message
                starts with ``source`` (by default, words saying it is a PEM given as text).
        """
        source = source or t("public key PEM")
        data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFileError(source, t("not a PEM public key")) from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(source, t("not an Ed25519 key ({type})", type=type(key).__name__))
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Verifier:
        """A verifier from a PEM file holding the public key or the private key file itself.

        Raises:
            KeyFileError: the file cannot be read or holds no Ed25519 key;
                the message names the file.
        """
        source = os.fspath(path)
        try:
            pem = Path(source).read_bytes()
        except OSError as error:
            raise KeyFileError(source, t("cannot read the key: {reason}", reason=error.strerror or str(error))) from None
        if b"PRIVATE KEY-----" in pem:
            return Signer(_private_key(pem, source)).verifier()
        return cls.from_pem(pem, source)

    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def verify(self, hash_hex: str, signature: str) -> bool:
        """Whether ``signature`` is this key's signature of ``hash_hex``.

        Malformed input gives ``False``, never an exception. Only the
        canonical base64 spelling is accepted: a decoder that ignores stray
        padding bits would otherwise let a stored signature be altered
        without the check noticing.
        """
        try:
            message = bytes.fromhex(hash_hex)
            raw = base64.b64decode(signature, validate=True)
        except (ValueError, binascii.Error):
            return False
        if base64.b64encode(raw).decode("ascii") != signature:
            return False
        try:
            self._key.verify(raw, message)
        except InvalidSignature:
            return False
        return True


class Keyring:
    """The public keys verification trusts, by :attr:`Verifier.key_id`.

    The first key given is the current one (the key file's); the others are
    earlier keys.

    >>> old, new = Signer.generate(), Signer.generate()
    >>> ring = Keyring([new.verifier(), old.verifier()])
    >>> ring.verify(old.key_id, "00" * 32, old.sign("00" * 32)), ring.verify(new.key_id, "00" * 32, old.sign("00" * 32))
    (True, False)
    """

    def __init__(self, verifiers: Iterable[Verifier]) -> None:
        self.keys: dict[str, Verifier] = {}
        for verifier in verifiers:
            self.keys.setdefault(verifier.key_id, verifier)
        if not self.keys:
            raise ValueError("Keyring: at least one key is needed")
        self.current = next(iter(self.keys.values()))

    def knows(self, key_id: str | None) -> bool:
        return key_id is not None and key_id in self.keys

    def verify(self, key_id: str | None, hash_hex: str, signature: str) -> bool:
        """Whether ``signature`` is the signature of ``hash_hex`` by the trusted key ``key_id``.

        An unnamed key (a signature of the first rules, made before keys were
        named) is tried against every trusted key.
        """
        if key_id is None:
            return any(v.verify(hash_hex, signature) for v in self.keys.values())
        verifier = self.keys.get(key_id)
        return verifier is not None and verifier.verify(hash_hex, signature)

    def public_pems(self) -> list[tuple[str, str]]:
        """``(key_id, PEM)`` of every trusted key, the current one first."""
        return [(key_id, v.public_pem()) for key_id, v in self.keys.items()]


def history_path(key_file: str | os.PathLike[str]) -> Path:
    """Where the public keys of a key file's earlier keys are kept: beside it,
    named after it with ``.history.pem``."""
    path = Path(key_file)
    return path.with_name(path.name + ".history.pem")


def read_history(key_file: str | os.PathLike[str]) -> list[Verifier]:
    """The earlier public keys kept beside ``key_file`` (none when there is no history file).

    Raises:
        KeyFileError: the history file exists but cannot be read, or holds
            something that is not an Ed25519 public key.
    """
    path = history_path(key_file)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(str(path), t("cannot read the key history: {reason}", reason=str(error))) from None
    marker = "-----END PUBLIC KEY-----"
    pems = [chunk + marker for chunk in text.split(marker) if chunk.strip()]
    return [Verifier.from_pem(pem.strip() + "\n", str(path)) for pem in pems]


def keyring(key_file: str | os.PathLike[str], *, extra: Iterable[Verifier] = ()) -> Keyring:
    """The key file's public key, then its history's, then ``extra``.

    Raises:
        KeyFileError: as :meth:`Verifier.load` and :func:`read_history`.
    """
    return Keyring([Verifier.load(key_file), *read_history(key_file), *extra])


def rotate(key_file: str | os.PathLike[str]) -> tuple[Signer, Signer]:
    """Set a new signing key in ``key_file``; the old key's public half goes
    to the history file first, so nothing it signed stops verifying.

    Returns ``(old, new)``. The old private key is overwritten: it can sign
    nothing more.

    Raises:
        KeyFileError: the key file cannot be read, or the history or the new
            key cannot be written.
    """
    source = os.fspath(key_file)
    old = Signer.load(source)
    history = history_path(source)
    known = {v.key_id for v in read_history(source)}
    try:
        if old.key_id not in known:
            with open(history, "a", encoding="ascii") as out:
                out.write(old.public_pem())
                out.flush()
                os.fsync(out.fileno())
        new = Signer.generate()
        target = Path(source)
        replaced = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, replaced)
        try:
            _install(target, new.private_pem())
        except BaseException:
            os.replace(replaced, target)
            raise
        replaced.unlink()
    except OSError as error:
        raise KeyFileError(source, t("cannot rotate the signing key: {reason}", reason=error.strerror or str(error))) from None
    return old, new
