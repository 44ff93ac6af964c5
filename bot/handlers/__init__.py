"""Event handlers, one module per feature; `router` merges their routers."""
from bot.handlers import comments, pull_requests
from bot.routing import Router

router = Router(pull_requests.router, comments.router)
