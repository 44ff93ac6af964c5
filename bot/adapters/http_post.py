"""One HTTP POST to a notification receiver: a timeout, no redirect followed, the answer's body never read.

A receiver's URL is a secret (a Slack webhook's path is its credential), so no message here ever contains it.
"""
from __future__ import annotations

from typing import Mapping

import requests

# Seconds to connect, and between two reads of the answer; RQ's job timeout bounds the whole send.
SEND_TIMEOUT = 10.0


class DeliveryError(Exception):
    """The receiver did not take the notification: why, in words that never contain its URL."""


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float = SEND_TIMEOUT) -> int:
    """POST `body` to `url`; return the HTTP status when it is 2xx.

    Raises DeliveryError on a status >= 300 (a redirect is one: a receiver that moved is reconfigured, not
    followed to wherever it points), a timeout, or any failure to connect or send.
    """
    try:
        # stream=True: only the status line and headers are read; the body is dropped unread with the connection.
        with requests.post(url, data=body, headers=dict(headers), timeout=(timeout, timeout), allow_redirects=False,
                           stream=True) as response:
            status = response.status_code
    except requests.Timeout:
        raise DeliveryError(f"no answer within {timeout:g} s") from None
    except requests.RequestException as exc:
        # requests' own messages name the URL: only the kind of failure is kept.
        raise DeliveryError(f"could not deliver ({type(exc).__name__})") from None
    if 300 <= status < 400:
        raise DeliveryError(f"answered HTTP {status}, a redirect (not followed: set the receiver's new URL)")
    if status >= 400 or status < 200:
        raise DeliveryError(f"answered HTTP {status}")
    return status
