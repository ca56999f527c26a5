"""Evidence bundles: export from the ledger, verify offline with nothing but the file."""

from .bundle import BUNDLE_FORMAT, export_bundle
from .pack import PACK_FORMAT, export_pack, pack_bytes
from .verify import BundleVerdict, verify_bundle, verify_bundle_text

__all__ = [
    "BUNDLE_FORMAT",
    "PACK_FORMAT",
    "BundleVerdict",
    "export_bundle",
    "export_pack",
    "pack_bytes",
    "verify_bundle",
    "verify_bundle_text",
]
