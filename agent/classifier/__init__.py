"""Signed classifier bundles: format (bundle.py), signing and verification from bytes (verify.py),
prediction (classifier.py), key ids (keys.py). Pure; key_files.py and store.py are its file edge."""
