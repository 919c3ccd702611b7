"""Server-wide settings for serving the dashboard to many people at once.

``guard_clear_cache()`` makes the server ignore the ``clear_cache`` message a browser may send
over Streamlit's websocket. Streamlit's handler empties ``st.cache_data`` and
``st.cache_resource`` for every session of the process, so one visitor (or a script) could make
a whole class wait for every fit again. Streamlit has no configuration option for this, so the
handler of ``AppSession`` is replaced once per process; the dashboard never needs a client to
clear the cache (fits are keyed by data and settings; caches are bounded and expire on their
own). Set ``ALLIANCE_ALLOW_CLEAR_CACHE=1`` to keep Streamlit's behaviour while developing.
"""

from __future__ import annotations

import logging
import os

from streamlit.runtime.app_session import AppSession

LOG = logging.getLogger("alliance_dashboard")
ALLOW_ENV = "ALLIANCE_ALLOW_CLEAR_CACHE"
_HANDLER = "_handle_clear_cache_request"  # AppSession's handler of BackMsg.clear_cache


def _refuse_clear_cache(session: AppSession) -> None:
    LOG.warning("Ignored a request from a browser to clear the server's caches")


def guard_clear_cache() -> bool:
    """Ignore ``clear_cache`` from browsers (idempotent); True when the guard is active.

    Called at the top of app.py: every cached value is computed by a run of app.py, so the
    guard is in place before anything could be cleared.
    """
    if os.environ.get(ALLOW_ENV) == "1":
        return False
    if not hasattr(AppSession, _HANDLER):
        # A Streamlit release renamed the handler: say so loudly rather than guard nothing.
        raise RuntimeError(f"streamlit.runtime.app_session.AppSession has no {_HANDLER}")
    setattr(AppSession, _HANDLER, _refuse_clear_cache)
    return True


def clear_cache_guarded() -> bool:
    return getattr(AppSession, _HANDLER) is _refuse_clear_cache
