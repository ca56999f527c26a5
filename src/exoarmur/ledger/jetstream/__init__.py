"""The JetStream store: the ledger in NATS JetStream, shared by processes on many machines.

One room per concern (see :mod:`.store` for the design):

- :mod:`.settings`   the ``nats://`` URL and its options (pure)
- :mod:`.layout`     subjects, bucket names and stream configurations (pure)
- :mod:`.chunking`   how events are packed into messages and read back (pure)
- :mod:`.connection` the event loop, the connection and its guarded requests
- :mod:`.kv`         key-value buckets: the indexes and the idempotency keys
- :mod:`.admin`      creating a ledger's streams, or checking the ones there
- :mod:`.store`      :class:`JetStreamStore`, the ledger store
- :mod:`.lease`      :class:`RunLock`, who may recover, across machines
"""

from .layout import Layout, subject_token
from .lease import RunLock
from .settings import DEFAULT_STREAM
from .store import JetStreamStore

__all__ = ["DEFAULT_STREAM", "JetStreamStore", "Layout", "RunLock", "subject_token"]
