"""The local REST API of a node (FastAPI), served on loopback or a unix socket only.

- `app.py`: `create_app(node)`: routes (/health, /node, /peers, /ping, /events, /metrics, /openapi.json),
  error mapping from the catalog.
- `guard.py`: `LocalOnlyMiddleware`: refuses (403) any caller that is not on this machine.
- `server.py`: `ApiServer`: runs uvicorn inside the node's event loop.
"""

from agora.api.app import create_app, error_response
from agora.api.guard import LocalOnlyMiddleware, is_local
from agora.api.server import ApiServer

__all__ = ["ApiServer", "LocalOnlyMiddleware", "create_app", "error_response", "is_local"]
