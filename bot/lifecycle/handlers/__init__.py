"""Event handlers, one module per feature; `router` merges their routers."""
from bot.lifecycle.handlers import check_runs, comments, pull_requests
from bot.lifecycle.routing import Router

router = Router(pull_requests.router, comments.router, check_runs.router)
