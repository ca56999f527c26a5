"""Evidence bundles: export from the ledger, verify offline with nothing but the file."""

from .bundle import BUNDLE_FORMAT, export_bundle
from .verify import BundleVerdict, verify_bundle, verify_bundle_text

__all__ = ["BUNDLE_FORMAT", "BundleVerdict", "export_bundle", "verify_bundle", "verify_bundle_text"]
