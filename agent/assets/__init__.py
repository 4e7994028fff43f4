"""Third-party models and test data: the manifest, and a verifying, atomic fetcher."""

from agent.assets.fetcher import AssetResult, FetchReport, asset_path, fetch_assets
from agent.assets.manifest import Asset, Manifest, ManifestError, load_manifest

__all__ = [
    "Asset",
    "AssetResult",
    "FetchReport",
    "Manifest",
    "ManifestError",
    "asset_path",
    "fetch_assets",
    "load_manifest",
]
