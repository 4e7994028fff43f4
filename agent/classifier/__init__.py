"""Signed classifier bundles: format (bundle.py), signing and verification from bytes (verify.py),
prediction (classifier.py), key ids (keys.py). Pure: the key files and the model store on disk are
agent.runtime.key_files and agent.runtime.model_store."""
