"""Secrets out of a call's request parameters before they reach an issue, a log or Redis (pure).

Two rules, either one masks a value:
- its key names a secret: it holds password, passphrase, secret, token, credential, signature or
  authorization, or ends in `key` (`privateKey`, `apiKey`, `secretAccessKey`), unless it names or describes one
  (`kmsKeyId`, `secretId`, `keyName`);
- the value looks like one: an AWS access key id (AKIA/ASIA...), a 40-character secret access key, a long
  base64 blob such as a session token, or a PEM private key. Such text is masked wherever it stands in a string.
CloudTrail already hides some values itself (`HIDDEN_DUE_TO_SECURITY_REASONS`); this is the second net.
"""
from __future__ import annotations

import re
from typing import Any

MASK = "***"
MAX_DEPTH = 20
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)|secret|token|credential|signature|authorization|(?<![a-z])auth$"
                         r"|key$", re.IGNORECASE)
# What names or describes a secret is not one: `keyId`, `kmsKeyId`, `secretId`, `keyName`, `tokenType`.
_NOT_SECRET_KEY = re.compile(r"(id|ids|name|names|arn|arns|type|spec|usage)$|^key$", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)"  # PEM, even cut short
    r"|\b(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"                                   # access key ids (and user ids)
    r"|(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"                  # a secret access key
    r"|[A-Za-z0-9/+]{100,}={0,2}",                                              # session tokens, other blobs
    re.DOTALL)


def mask_parameters(value: Any, depth: int = 0) -> Any:
    """`value` (JSON: dicts, lists, strings, numbers) with every secret replaced by MASK; a new value."""
    if depth > MAX_DEPTH:
        return MASK  # deeper than any real request: shown as masked rather than walked without end
    if isinstance(value, dict):
        return {str(k): MASK if secret_key(str(k)) and v not in (None, "", [], {})
                else mask_parameters(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_parameters(v, depth + 1) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def secret_key(key: str) -> bool:
    """Whether a parameter named `key` holds a secret (`masterUserPassword`: yes; `keyId`, `kmsKeyId`: no)."""
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.search(key)


def mask_text(text: str) -> str:
    """`text` with every value that looks like a secret replaced by MASK."""
    return _SECRET_VALUE.sub(MASK, text)
