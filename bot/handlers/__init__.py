"""Event handlers, one module per feature; `router` merges their routers."""
from bot.routing import Router

router = Router()
