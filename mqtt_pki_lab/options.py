"""The choices a student makes while building the PKI, checked before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagram import CA_KEY, FIRST_CLIENT_FOLDER, INTERMEDIATE_KEY, LabFile, Role
from .errors import InputError
from .intermediate import DEFAULT_INTERMEDIATE_NAME
from .keys import DEFAULT_KEY_TYPE, key_type
from .names import broker_names, check_client_name, check_common_name
from .profile import (
    DEFAULT_CA_DAYS,
    DEFAULT_CA_NAME,
    DEFAULT_CLIENT_NAME,
    DEFAULT_LEAF_DAYS,
    DEFAULT_SERVER_NAME,
    MAX_CA_DAYS,
    check_days,
)


@dataclass(frozen=True)
class BuildOptions:
    """The choices a student makes while building the PKI. All are checked by :meth:`check`."""

    key_type: str = DEFAULT_KEY_TYPE
    server_names: tuple[str, ...] = (DEFAULT_SERVER_NAME,)
    client_name: str = DEFAULT_CLIENT_NAME
    """The first client's name (its Common Name and MQTT username); further clients are named when added."""
    ca_name: str = DEFAULT_CA_NAME
    days: int = DEFAULT_LEAF_DAYS
    ca_days: int = DEFAULT_CA_DAYS
    passphrase: bytes | None = field(default=None, repr=False)
    """Encrypts ``ca.key`` and ``intermediate.key`` (and, with ``encrypt_all``, every key) when set."""
    encrypt_all: bool = False
    intermediate: bool = False
    """Build a chain of three (``--intermediate``): the root signs an intermediate CA, which signs the leaves."""
    intermediate_name: str = DEFAULT_INTERMEDIATE_NAME
    """The intermediate CA's Common Name (``--intermediate-name``)."""

    def check(self) -> BuildOptions:
        """Check every option before anything is written; raise :class:`InputError` on the first bad one."""
        key_type(self.key_type)
        broker_names(self.server_names)
        check_client_name(self.client_name)
        check_common_name(self.ca_name, "--ca-name")
        check_days(self.days, "--days")
        check_days(self.ca_days, "--ca-days", maximum=MAX_CA_DAYS)
        if self.days > self.ca_days:
            raise InputError("--days", f"leaf certificates ({self.days} days) cannot outlive the CA "
                                       f"({self.ca_days} days)")
        if self.passphrase is not None and not isinstance(self.passphrase, bytes):
            raise InputError("--passphrase-file", "the passphrase must be bytes")
        check_common_name(self.intermediate_name, "--intermediate-name")
        if self.intermediate and self.intermediate_name == self.ca_name:
            raise InputError("--intermediate-name", f"{self.intermediate_name!r} is the root's name too: the two CAs "
                                                    "of a chain need different names (--ca-name, --intermediate-name)")
        return self

    @property
    def hostname(self) -> str:
        """The name a client on this machine connects to the broker with: its first name."""
        return broker_names(self.server_names)[0]

    def names_for(self, role: Role) -> list[str]:
        """The names ``role`` asks for in its CSR: the broker's names, or a client's one name."""
        if role.kind == "broker":
            return broker_names(self.server_names)
        if role.kind == "client":
            return [self.client_name if role.folder == FIRST_CLIENT_FOLDER else role.name]
        raise ValueError(f"{role.label} makes no CSR")

    def key_passphrase(self, file: LabFile) -> bytes | None:
        """The passphrase protecting ``file`` (a key of the lab), or None when it is stored in clear."""
        if self.passphrase and (file in (CA_KEY, INTERMEDIATE_KEY) or self.encrypt_all):
            return self.passphrase
        return None
